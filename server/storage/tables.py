"""The schema (ARCHITECTURE.md §4.2): every tenant-owned table is keyed ``(tenant_id, id)``.

Ids are random 128-bit values rendered as base64url (22 characters). Child tables carry composite
foreign keys that include ``tenant_id``, so a row can never point at another tenant's row.
Alembic migrations in ``migrations/`` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = String(32)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


tenants = Table(
    "tenants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("external_account_required", Boolean, nullable=False),
    _ts("created_at"),
    # What the tenant's leaves carry in AIA (RFC 5280 §4.2.2.1): the OCSP responder, caIssuers.
    Column("aia_ocsp", Boolean, nullable=False, server_default=true()),
    Column("aia_ca_issuers", Boolean, nullable=False, server_default=true()),
    # Per-tenant rate limit overrides: JSON {limit name: "COUNT/PERIOD" or "" for off}.
    Column("limit_overrides", Text, nullable=False, server_default="{}"),
    # The named set of limits the tenant is on ("" = the configuration's defaults).
    Column("tier", String(32), nullable=False, server_default=""),
    # The policy version in force (policies.version), None: the built-in permissive policy.
    Column("policy_version", Integer, nullable=True),
    # Where approval notifications go, and the HMAC-SHA256 key they are signed with (sealed).
    Column("webhook_url", Text, nullable=False, server_default=""),
    Column("webhook_secret_sealed", LargeBinary, nullable=True),
)

platform_cas = Table(
    "platform_cas",
    metadata,
    Column("id", ID, primary_key=True),
    Column("role", String(32), nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("key_ref", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    _ts("created_at"),
)

issuers = Table(
    "issuers",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("chain_pem", Text, nullable=False),
    Column("key_ref", Text, nullable=False),
    Column("status", String(16), nullable=False),
    _ts("created_at"),
    # Which hierarchy the issuer belongs to: platform-root, dedicated-root or customer-root.
    Column("pattern", String(16), nullable=False, server_default="platform-root"),
    # The trust anchor of a dedicated or customer hierarchy (empty: the platform root).
    Column("root_pem", Text, nullable=False, server_default=""),
    # A customer-owned CA's request, until its signed certificate is imported.
    Column("csr_pem", Text, nullable=True),
    _ts("retired_at", nullable=True),
    # Other chains above the issuer certificate (JSON list of PEM), offered as rel="alternate".
    Column("alternate_chains", Text, nullable=False, server_default="[]"),
    # A delegated OCSP responder (RFC 6960 §4.2.2.2): its certificate and key, if any.
    Column("ocsp_responder_pem", Text, nullable=True),
    Column("ocsp_key_ref", Text, nullable=True),
    # The last CRL number used (RFC 5280 §5.2.3): increases across every process.
    Column("crl_number", BigInteger, nullable=False, server_default="0"),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

eab_keys = Table(
    "eab_keys",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("hmac_sealed", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("account_id", ID, nullable=True),
    _ts("created_at"),
    _ts("bound_at", nullable=True),
    _ts("revoked_at", nullable=True),
    # The management API principal who created the key: an order of an account bound with it is
    # that principal's request, which they may not approve themselves (maker-checker).
    Column("created_by", String(128), nullable=False, server_default=""),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

accounts = Table(
    "accounts",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("jwk_thumbprint", String(64), nullable=False),
    Column("jwk", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", JSON, nullable=False),
    Column("terms_agreed", Boolean, nullable=False),
    Column("eab_kid", String(64), nullable=True),
    _ts("created_at"),
    UniqueConstraint("tenant_id", "jwk_thumbprint"),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

used_nonces = Table(
    "used_nonces",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("nonce", String(64), primary_key=True),
    _ts("expires_at"),
    Index(None, "expires_at"),
)

orders = Table(
    "orders",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", JSON, nullable=False),
    Column("profile", String(64), nullable=False),
    Column("csr_der", LargeBinary, nullable=True),
    _ts("expires"),
    _ts("not_before", nullable=True),
    _ts("not_after", nullable=True),
    Column("error", JSON, nullable=True),
    Column("certificate_id", ID, nullable=True),
    _ts("created_at"),
    # The ARI CertID of the certificate this order replaces (RFC 9773 §5), as the client sent it.
    Column("replaces", Text, nullable=True),
    ForeignKeyConstraint(["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.id"]),
    Index(None, "tenant_id", "account_id", "created_at"),
    # The concurrent-issuance cap counts a tenant's processing orders.
    Index(None, "tenant_id", "status"),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("identifier_type", String(8), nullable=False),
    Column("identifier_value", String(255), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    _ts("expires"),
    _ts("created_at"),
    ForeignKeyConstraint(["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.id"]),
    Index(None, "tenant_id", "account_id", "identifier_type", "identifier_value"),
)

order_authorizations = Table(
    "order_authorizations",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("order_id", ID, primary_key=True),
    Column("authz_id", ID, primary_key=True),
    Column("position", Integer, nullable=False),
    ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"]),
    ForeignKeyConstraint(
        ["tenant_id", "authz_id"], ["authorizations.tenant_id", "authorizations.id"]
    ),
    Index(None, "tenant_id", "authz_id"),
)

challenges = Table(
    "challenges",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("authz_id", ID, nullable=False),
    Column("type", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    _ts("validated_at", nullable=True),
    Column("error", JSON, nullable=True),
    Column("records", JSON, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "authz_id"], ["authorizations.tenant_id", "authorizations.id"]
    ),
    Index(None, "tenant_id", "authz_id"),
)

certificates = Table(
    "certificates",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("issuer_id", ID, nullable=False),
    Column("order_id", ID, nullable=False),
    Column("account_id", ID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", JSON, nullable=False),
    Column("spki_sha256", String(64), nullable=True),
    Column("chain_pem", Text, nullable=True),
    _ts("not_before", nullable=True),
    _ts("not_after", nullable=True),
    _ts("revoked_at", nullable=True),
    Column("revocation_reason", Integer, nullable=True),
    _ts("created_at"),
    # The order that claimed this certificate as its replacement (RFC 9773 §5); a newOrder
    # takes the claim over only from an order that has become invalid (ra/ari.py).
    Column("replaced_by_order", ID, nullable=True),
    # SHA-256 of the leaf's DER (hex), set at issuance: how a host inventory finds the
    # certificate this tenant issued among what an agent reports.
    Column("fingerprint_sha256", String(64), nullable=True),
    ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"]),
    ForeignKeyConstraint(["tenant_id", "issuer_id"], ["issuers.tenant_id", "issuers.id"]),
    Index(None, "tenant_id", "order_id"),
    Index(None, "tenant_id", "fingerprint_sha256"),
)

events = Table(
    "events",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("type", String(48), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("data", JSON, nullable=False),
    _ts("created_at"),
    Index(None, "tenant_id", "object_type", "object_id"),
    Index(None, "tenant_id", "created_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("object_id", ID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("run_at"),
    _ts("locked_until", nullable=True),
    _ts("deadline"),
    Column("last_error", Text, nullable=True),
    _ts("created_at"),
    Index(None, "status", "run_at"),
)

# Versioned policy documents of a tenant; tenants.policy_version names the one in force.
policies = Table(
    "policies",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("document", JSON, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("created_by", String(128), nullable=False),
    _ts("created_at"),
    _ts("activated_at", nullable=True),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

# What host agents report (POST /acme/{tenant}/inventory): one row per certificate an account
# found on a host. Each report replaces the (account, host) snapshot; first_seen survives it.
inventory = Table(
    "inventory",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("host", String(253), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("sans", JSON, nullable=False),
    Column("issuer", Text, nullable=False),
    _ts("not_before"),
    _ts("not_after"),
    Column("key_type", String(32), nullable=False),
    # The size in a key type ("rsa-2048" -> 2048, "ec-p256" -> 256), None when it names none.
    Column("key_bits", Integer, nullable=True),
    Column("signature_algorithm", String(64), nullable=True),
    Column("managed", Boolean, nullable=False),
    # Some location saw it served (a probe, or a configuration judged served).
    Column("served", Boolean, nullable=False),
    Column("locations", JSON, nullable=False),
    # The certificate of this tenant with this fingerprint, if it issued one.
    Column("certificate_id", ID, nullable=True),
    _ts("first_seen"),
    _ts("last_seen"),
    ForeignKeyConstraint(["tenant_id", "account_id"], ["accounts.tenant_id", "accounts.id"]),
    ForeignKeyConstraint(
        ["tenant_id", "certificate_id"], ["certificates.tenant_id", "certificates.id"]
    ),
    UniqueConstraint("tenant_id", "account_id", "host", "fingerprint"),
    Index(None, "tenant_id", "first_seen"),
    Index(None, "tenant_id", "fingerprint"),
)

# Maker-checker requests: an order an approval rule holds, or a sensitive policy change.
approvals = Table(
    "approvals",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("policy_version", Integer, nullable=True),
    Column("requested_by", String(128), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("decided_by", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    _ts("created_at"),
    _ts("deadline"),
    _ts("decided_at", nullable=True),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    Index(None, "tenant_id", "status", "created_at"),
    Index(None, "tenant_id", "kind", "object_id"),
)

# Outgoing webhook notifications (an outbox): delivered and retried by the job worker.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("event", String(48), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    _ts("created_at"),
    _ts("delivered_at", nullable=True),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)

# Platform tables: not tenant-owned request data, reached only through the management API's
# own stores (a token is looked up before anyone knows its tenant).
PLATFORM_TABLES = frozenset({"jobs", "api_tokens"})

# Tables whose every statement must carry a tenant_id predicate (checked by a test-time hook).
TENANT_TABLES = frozenset(
    t.name for t in metadata.sorted_tables if "tenant_id" in t.c and t.name not in PLATFORM_TABLES
)


# GCRA buckets (ARCHITECTURE §7): one theoretical arrival time per limit key, shared by every
# process; keys name the limit and its subject (e.g. "new-orders:account:<id>").
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("tenant_id", ID, primary_key=True),
    Column("key", String(200), primary_key=True),
    _ts("tat"),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
)


# Management API bearer tokens: only a SHA-256 of the secret is kept; tenant_id None is a
# platform token.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, nullable=True),
    Column("principal", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("label", String(200), nullable=False, server_default=""),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_by", String(128), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("revoked_at", nullable=True),
    _ts("last_used_at", nullable=True),
    # The GCRA bucket of the token's API calls (its theoretical arrival time).
    _ts("calls_tat", nullable=True),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    Index(None, "tenant_id", "created_at"),
)

# Idempotency-Key records of the management API: the first answer to (token, key) is replayed
# to every retry of the same request; status None marks one still running.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token_id", ID, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("content_type", String(100), nullable=True),
    Column("location", Text, nullable=True),
    _ts("created_at"),
    Index(None, "created_at"),
)
