"""Domain values of the ACME layer and the pure status rules (RFC 8555 §7.1.6).

Statuses are stored, but an order's and an authorization's *effective* status also depends on
the clock (expiry) and, for orders, on their authorizations: those rules live in the two pure
functions below, which every reader uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from certplane.policy.identifiers import Identifier, IdentifierType

__all__ = ["Identifier", "IdentifierType"]


class AccountStatus(StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthzStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class ChallengeType(StrEnum):
    HTTP_01 = "http-01"
    DNS_01 = "dns-01"
    TLS_ALPN_01 = "tls-alpn-01"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class EventType(StrEnum):
    """Lifecycle events (ARCHITECTURE.md §0.7): appended, never updated."""

    TENANT_CREATED = "tenant.created"
    TENANT_STATUS_CHANGED = "tenant.status_changed"
    EAB_CREATED = "eab.created"
    EAB_REVOKED = "eab.revoked"
    EAB_BOUND = "eab.bound"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_UPDATED = "account.updated"
    ACCOUNT_DEACTIVATED = "account.deactivated"
    ACCOUNT_KEY_CHANGED = "account.key_changed"
    ORDER_CREATED = "order.created"
    AUTHZ_CREATED = "authz.created"
    AUTHZ_VALID = "authz.valid"
    AUTHZ_INVALID = "authz.invalid"
    AUTHZ_DEACTIVATED = "authz.deactivated"
    CHALLENGE_STARTED = "challenge.started"
    REQUESTED = "certificate.requested"
    ISSUED = "certificate.issued"
    FAILED = "certificate.failed"
    REVOKED = "certificate.revoked"
    # Reported by a host agent (POST /acme/{tenant}/inventory), or seen in its inventory: a
    # certificate this tenant issued, served somewhere for the first time.
    DEPLOYED = "certificate.deployed"
    RENEWED = "certificate.renewed"
    # An agent's issuance, renewal or deployment failed (the CA's own failures are FAILED).
    AGENT_FAILED = "agent.failed"
    ISSUER_CREATED = "issuer.created"
    ISSUER_RETIRED = "issuer.retired"
    TENANT_UPDATED = "tenant.updated"
    SUPPORT_ACCESS = "support.access"
    POLICY_CREATED = "policy.created"
    POLICY_ACTIVATED = "policy.activated"
    POLICY_REJECTED = "policy.rejected"
    POLICY_DECISION = "policy.decision"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    TOKEN_CREATED = "token.created"  # noqa: S105 (event names)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105
    WEBHOOK_CONFIGURED = "webhook.configured"


class InventoryFlag(StrEnum):
    """What the management API flags in a host inventory; computed when read (see
    ``storage/repos/host_inventory.py``), never stored."""

    EXPIRING = "expiring"  # notAfter within the requested number of days (default 30)
    EXPIRED = "expired"
    WEAK = "weak"  # a key below WEAK_KEY_BITS, or a signature with a WEAK_SIGNATURE_HASHES hash
    UNKNOWN_ISSUER = "unknown-issuer"  # not a certificate this tenant issued
    UNMANAGED = "unmanaged"  # found on the host, not managed by the agent


# Key families (the prefix of a reported key type: "rsa-2048", "ec-p256") and the size below
# which a key is weak; other families (ed25519, …) are not judged weak.
WEAK_KEY_BITS: Mapping[str, int] = {"rsa": 2048, "dsa": 2048, "ec": 256}
# Hash names that make a reported signature algorithm weak ("sha1WithRSAEncryption").
WEAK_SIGNATURE_HASHES = ("md2", "md5", "sha1")


# Which challenge types can prove control of which identifiers (RFC 8555 §8, RFC 8737, RFC 8738).
CHALLENGES_FOR_IDENTIFIER: dict[IdentifierType, tuple[ChallengeType, ...]] = {
    IdentifierType.DNS: (ChallengeType.HTTP_01, ChallengeType.DNS_01, ChallengeType.TLS_ALPN_01),
    IdentifierType.IP: (ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01),
}


def challenge_types_for(identifier: Identifier) -> tuple[ChallengeType, ...]:
    """Challenges offered for an identifier; a wildcard can only be proven by dns-01 (§7.1.3)."""
    if identifier.is_wildcard:
        return (ChallengeType.DNS_01,)
    return CHALLENGES_FOR_IDENTIFIER[identifier.type]


def authz_status(stored: AuthzStatus, expires: datetime, now: datetime) -> AuthzStatus:
    """Effective authorization status (RFC 8555 §7.1.6).

    - a pending or valid authorization whose ``expires`` has passed is ``expired``;
    - every other stored status stands as it is.
    """
    if stored in (AuthzStatus.PENDING, AuthzStatus.VALID) and expires <= now:
        return AuthzStatus.EXPIRED
    return stored


def order_status(
    stored: OrderStatus,
    expires: datetime,
    authz_statuses: Iterable[AuthzStatus],
    now: datetime,
) -> OrderStatus:
    """Effective order status (RFC 8555 §7.1.6), ``authz_statuses`` already effective.

    - ``processing``, ``valid`` and ``invalid`` are decided by the issuance path and stand;
    - an order past ``expires`` that never reached ``processing`` is ``invalid``;
    - any authorization invalid, deactivated, expired or revoked makes the order ``invalid``;
    - all authorizations valid makes a pending order ``ready``;
    - otherwise the order is ``pending``.
    """
    if stored in (OrderStatus.PROCESSING, OrderStatus.VALID, OrderStatus.INVALID):
        return stored
    if expires <= now:
        return OrderStatus.INVALID
    statuses = list(authz_statuses)
    if any(s not in (AuthzStatus.PENDING, AuthzStatus.VALID) for s in statuses):
        return OrderStatus.INVALID
    if statuses and all(s is AuthzStatus.VALID for s in statuses):
        return OrderStatus.READY
    return OrderStatus.PENDING


@dataclass(frozen=True)
class Tenant:
    id: str
    slug: str
    display_name: str
    status: TenantStatus
    external_account_required: bool
    created_at: datetime
    # RFC 5280 §4.2.2.1: whether leaves carry the OCSP responder and caIssuers URLs.
    aia_ocsp: bool = True
    aia_ca_issuers: bool = True
    # Rate limits of this tenant that differ from the configuration: name -> "COUNT/PERIOD"
    # ("" turns the limit off for the tenant).
    limit_overrides: Mapping[str, str] = field(default_factory=dict)
    # The named set of limits the tenant is on ("" = the configuration's defaults).
    tier: str = ""
    # The policy version in force; None: the built-in policy (everything the RFCs allow).
    policy_version: int | None = None
    # Where approval notifications are POSTed ("" = nowhere).
    webhook_url: str = ""


@dataclass(frozen=True)
class Account:
    id: str
    jwk: dict[str, Any]
    jwk_thumbprint: str
    status: AccountStatus
    contact: tuple[str, ...]
    terms_agreed: bool
    eab_kid: str | None
    created_at: datetime


@dataclass(frozen=True)
class Challenge:
    id: str
    authz_id: str
    type: ChallengeType
    token: str
    status: ChallengeStatus
    validated_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Authorization:
    id: str
    account_id: str
    identifier: Identifier
    wildcard: bool
    stored_status: AuthzStatus
    expires: datetime
    challenges: tuple[Challenge, ...]

    def status(self, now: datetime) -> AuthzStatus:
        return authz_status(self.stored_status, self.expires, now)


@dataclass(frozen=True)
class Order:
    id: str
    account_id: str
    stored_status: OrderStatus
    identifiers: tuple[Identifier, ...]
    profile: str
    expires: datetime
    not_before: datetime | None
    not_after: datetime | None
    error: dict[str, Any] | None
    certificate_id: str | None
    authz_ids: tuple[str, ...]
    created_at: datetime
    # The ARI CertID of the certificate this order replaces (RFC 9773 §5), None: not a renewal.
    replaces: str | None = None


class CertificateStatus(StrEnum):
    RESERVED = "reserved"
    ISSUED = "issued"
    REVOKED = "revoked"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Certificate:
    id: str
    serial: str
    issuer_id: str
    order_id: str
    account_id: str
    status: CertificateStatus
    identifiers: tuple[Identifier, ...]
    spki_sha256: str | None
    chain_pem: str | None
    not_before: datetime | None
    not_after: datetime | None
    revoked_at: datetime | None
    revocation_reason: int | None
    # The order that claimed this certificate as its replacement (RFC 9773 §5), if any.
    replaced_by_order: str | None = None


class EabStatus(StrEnum):
    UNBOUND = "unbound"
    BOUND = "bound"
    REVOKED = "revoked"


@dataclass(frozen=True)
class EabKey:
    kid: str
    label: str
    hmac_sealed: bytes
    status: EabStatus
    account_id: str | None
    created_at: datetime
    bound_at: datetime | None
    # Who created it (a management API principal, or "operator" for the command line).
    created_by: str = ""


class IssuerStatus(StrEnum):
    PENDING = "pending"  # a customer-owned CA whose signed certificate is not imported yet
    ACTIVE = "active"  # signs new certificates
    RETIRED = "retired"  # replaced by a rotation: still signs CRLs and OCSP responses
    ROOT = "root"  # a tenant's own root: signs the tenant's intermediates, never leaves


class HierarchyPattern(StrEnum):
    PLATFORM_ROOT = "platform-root"  # the platform root signs the tenant intermediate
    DEDICATED_ROOT = "dedicated-root"  # a tenant root of its own signs it
    CUSTOMER_ROOT = "customer-root"  # the tenant's own CA signs our CSR


@dataclass(frozen=True)
class IssuerRecord:
    """A tenant CA: its certificate (empty while pending), chain above it and key ref."""

    id: str
    name: str
    certificate_pem: str
    chain_pem: str
    key_ref: str
    status: str
    pattern: str = HierarchyPattern.PLATFORM_ROOT.value
    root_pem: str = ""
    csr_pem: str | None = None
    created_at: datetime | None = None
    retired_at: datetime | None = None
    # Chains above the issuer certificate other than ``chain_pem`` (PEM each), RFC 8555 §7.4.2.
    alternate_chains: tuple[str, ...] = ()
    # A delegated OCSP responder (RFC 6960 §4.2.2.2); None: the issuer key signs responses.
    ocsp_responder_pem: str | None = None
    ocsp_key_ref: str | None = None
    crl_number: int = 0
