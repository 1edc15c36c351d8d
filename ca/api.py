"""Who issues: the `IssuerBackend` port and the values that cross it.

The RA hands a backend an `IssuanceRequest` built from a finalized order (CSR public key, names,
validity window, profile) and gets back `Issued` or, from a CA that answers later (an upstream
ACME CA), `Deferred`; the issuance job then calls `poll` until `Issued` (ARCHITECTURE §0.6, §6).
Backends are chosen from an explicit registry; this module knows X.509, never ACME.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from .errors import CAError, IssuanceRefused, IssuerUnavailable

__all__ = [
    "SERIAL_BITS",
    "CAError",
    "Deferred",
    "DeferredHandle",
    "IPAddress",
    "IssuanceRefused",
    "IssuanceRequest",
    "Issued",
    "IssuerBackend",
    "IssuerUnavailable",
    "new_serial",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DeferredHandle: TypeAlias = str
"""An opaque, backend-defined string; persist it verbatim and hand it back to `poll`."""

SERIAL_BITS = 127
"""Serials are 127-bit positive integers with the top bit set (126 random bits)."""


def new_serial() -> int:
    """A fresh certificate serial number (RFC 5280 §4.1.2.2, CA/B Forum BR §7.1).

    126 bits from `secrets` plus a forced bit 126: always positive, at least 64 bits of CSPRNG
    output as the Baseline Requirements demand, and always a 16-octet DER INTEGER (the top octet
    is 0x40..0x7f, so no sign padding), well inside the 20-octet limit.
    """
    return (1 << (SERIAL_BITS - 1)) | secrets.randbits(SERIAL_BITS - 1)


@dataclass(frozen=True)
class IssuanceRequest:
    """What to certify. The CA, not the requester, decides every other certificate field.

    `serial` is reserved and recorded by the caller before signing (so no signed certificate is
    unknown to the database). `not_before`/`not_after` are timezone-aware and inclusive
    (RFC 5280 §4.1.2.5); `Profile.validity_window` computes the usual ones. `common_name`, if
    set, must equal one of the names (RFC 5280 §4.1.2.6 leaves it optional; SANs are what count).
    """

    tenant_id: str
    serial: int
    public_key: CertificatePublicKeyTypes
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]
    not_before: datetime
    not_after: datetime
    profile: str = "default"
    common_name: str | None = None


@dataclass(frozen=True)
class Issued:
    """A signed certificate.

    `chain_pem` is the leaf followed by the issuing intermediates (never the root), in the form
    served as ``application/pem-certificate-chain`` (RFC 8555 §7.4.2, RFC 7468 §5).
    """

    certificate_pem: str
    chain_pem: str

    @property
    def certificate_der(self) -> bytes:
        """The leaf certificate, DER-encoded."""
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))
        return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Deferred:
    """The CA accepted the request and will answer later: poll `handle` after the delay."""

    handle: DeferredHandle
    retry_after_seconds: int


class IssuerBackend(Protocol):
    """Who issues: a local CA, an upstream ACME CA, ...

    Both methods raise `IssuanceRefused` (permanent: the order becomes invalid),
    `IssuerUnavailable` (transient: retry the job) or another `CAError` (internal error).
    """

    async def issue(self, req: IssuanceRequest) -> Issued | Deferred:
        """Sign `req` now, or accept it and return a handle to poll."""
        ...

    async def poll(self, handle: DeferredHandle) -> Issued | Deferred:
        """Ask again about a request that returned `Deferred`."""
        ...
