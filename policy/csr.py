"""Finalize-time CSR checks (RFC 8555 §7.4; Boulder's ``csr.VerifyCSR``).

:func:`check_csr` answers one question: may this CSR finalize this order for this account? The
certificate's contents come from the CA profile, never from the CSR; only the key and the names
are taken from it.

NOTE(extensions): requested extensions are handled conservatively, as data:

* subjectAltName: parsed; only dNSName and iPAddress entries are allowed.
* basicConstraints: allowed with ``cA`` false, refused with ``cA`` true.
* keyUsage, extendedKeyUsage, subjectKeyIdentifier: ignored (the profile decides them).
* TLS feature (OCSP Must-Staple, RFC 7633): refused. The profile does not honour it, and issuing
  without a feature the subscriber asked for would mislead them.
* any other extension: refused when critical (we cannot honour what we do not understand),
  ignored otherwise. Subject attributes other than the common name are ignored, as Boulder does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtensionOID, NameOID

from certplane.policy.identifiers import Identifier
from certplane.policy.keys import WeakKeyError, check_csr_key

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IGNORED_EXTENSIONS = frozenset(
    {
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    }
)
_REFUSED_EXTENSIONS = {ExtensionOID.TLS_FEATURE: "TLS feature (OCSP Must-Staple)"}
_SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


class CSRRejectionKind(StrEnum):
    """The ACME error type a refusal maps to (RFC 8555 §6.7)."""

    BAD_CSR = "badCSR"
    BAD_PUBLIC_KEY = "badPublicKey"


class CSRRejected(Exception):
    """The CSR cannot finalize the order; ``detail`` is safe to show to the client."""

    def __init__(self, detail: str, kind: CSRRejectionKind = CSRRejectionKind.BAD_CSR) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind


@dataclass(frozen=True)
class CSRInfo:
    """What the CA takes from an accepted CSR. Names are lowercase, in SAN order."""

    public_key: CertificatePublicKeyTypes
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]
    common_name: str | None


def check_csr(
    csr_der: bytes, identifiers: Sequence[Identifier], account_public_key: PublicKeyTypes
) -> CSRInfo:
    """Check a finalize CSR against the order's identifiers (RFC 8555 §7.4).

    Precondition: ``identifiers`` are normalised (``parse_identifiers`` output).
    Raises :class:`CSRRejected` (badCSR, or badPublicKey for an unacceptable key).
    """
    csr = _load(csr_der)
    public_key = _checked_public_key(csr, account_public_key)
    _check_signature(csr)
    extensions = _load_extensions(csr)
    _check_extensions(extensions)
    dns_names, ip_addresses = _san_names(extensions)
    common_name = _common_name(csr)
    _check_names(dns_names, ip_addresses, common_name, identifiers)
    return CSRInfo(public_key, tuple(dns_names), tuple(ip_addresses), common_name)


def _load(csr_der: bytes) -> x509.CertificateSigningRequest:
    """DER only: RFC 8555 §7.4 sends the CSR base64url-encoded DER, never PEM."""
    try:
        return x509.load_der_x509_csr(csr_der)
    except ValueError:
        raise CSRRejected("CSR is not a valid DER-encoded PKCS#10 request") from None


def _checked_public_key(
    csr: x509.CertificateSigningRequest, account_public_key: PublicKeyTypes
) -> CertificatePublicKeyTypes:
    """The key passes the certificate-key rules and is not the account key (RFC 8555 §11.1)."""
    try:
        public_key = csr.public_key()
        check_csr_key(public_key)
    except (ValueError, UnsupportedAlgorithm):
        raise CSRRejected(
            "CSR public key is not supported", CSRRejectionKind.BAD_PUBLIC_KEY
        ) from None
    except WeakKeyError as weak:
        raise CSRRejected(weak.detail, CSRRejectionKind.BAD_PUBLIC_KEY) from None
    if _spki(public_key) == _spki(account_public_key):
        raise CSRRejected("certificate public key must be different than account key")
    return public_key


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    """Proof of possession with a SHA-2 signature (SHA-1 and MD5 are refused)."""
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        hash_algorithm = None
    if not isinstance(hash_algorithm, _SIGNATURE_HASHES):
        raise CSRRejected("CSR signature algorithm is not supported: expected SHA-256/384/512")
    if not csr.is_signature_valid:
        raise CSRRejected("CSR signature is invalid")


def _load_extensions(csr: x509.CertificateSigningRequest) -> x509.Extensions:
    try:
        return csr.extensions
    except x509.DuplicateExtension:
        raise CSRRejected("CSR requests the same extension twice") from None
    except ValueError:
        raise CSRRejected("CSR has an unparsable extension request") from None


def _check_extensions(extensions: x509.Extensions) -> None:
    """Apply the NOTE(extensions) table from the module docstring."""
    for extension in extensions:
        oid = extension.oid
        if oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME or oid in _IGNORED_EXTENSIONS:
            continue
        if oid == ExtensionOID.BASIC_CONSTRAINTS:
            _check_basic_constraints(extension.value)
        elif oid in _REFUSED_EXTENSIONS:
            raise CSRRejected(f"CSR requests an unsupported extension: {_REFUSED_EXTENSIONS[oid]}")
        elif extension.critical:
            raise CSRRejected(f"CSR requests an unsupported critical extension {oid.dotted_string}")


def _check_basic_constraints(value: x509.ExtensionType) -> None:
    if isinstance(value, x509.BasicConstraints) and value.ca:
        raise CSRRejected("CSR requests a CA certificate (basicConstraints cA=true)")


def _san_names(extensions: x509.Extensions) -> tuple[list[str], list[IPAddress]]:
    """DNS names (lowercased) and IP addresses from subjectAltName; no other name types."""
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns_names: list[str] = []
    ip_addresses: list[IPAddress] = []
    for name in san:
        if isinstance(name, x509.DNSName):
            dns_names.append(name.value.lower())
        elif isinstance(name, x509.IPAddress) and isinstance(name.value, IPAddress):
            ip_addresses.append(name.value)
        else:
            raise CSRRejected(
                f"CSR subjectAltName has a {type(name).__name__} entry: only DNS "
                "names and IP addresses are allowed"
            )
    _refuse_duplicates([*dns_names, *map(str, ip_addresses)])
    return dns_names, ip_addresses


def _refuse_duplicates(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CSRRejected(f"CSR subjectAltName lists {name!r} more than once")
        seen.add(name)


def _common_name(csr: x509.CertificateSigningRequest) -> str | None:
    """At most one CN; other subject attributes are ignored."""
    attributes = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attributes) > 1:
        raise CSRRejected("CSR subject has more than one common name")
    if not attributes:
        return None
    value = attributes[0].value
    return value.lower() if isinstance(value, str) else value.decode("utf-8", "replace").lower()


def _check_names(
    dns_names: list[str],
    ip_addresses: list[IPAddress],
    common_name: str | None,
    identifiers: Sequence[Identifier],
) -> None:
    """SANs must be exactly the order's identifiers, and the CN one of the SANs."""
    requested = {f"dns:{name}" for name in dns_names} | {f"ip:{ip}" for ip in ip_addresses}
    if not requested:
        raise CSRRejected("CSR has no subjectAltName: expected the order's identifiers")
    if common_name is not None and not _cn_among(common_name, dns_names, ip_addresses):
        raise CSRRejected("CSR common name is not among its subjectAltName entries")
    ordered = {f"{ident.type.value}:{ident.value}" for ident in identifiers}
    missing, extra = sorted(ordered - requested), sorted(requested - ordered)
    if missing or extra:
        raise CSRRejected(_mismatch_detail(missing, extra))


def _cn_among(common_name: str, dns_names: list[str], ip_addresses: list[IPAddress]) -> bool:
    try:
        return ipaddress.ip_address(common_name) in ip_addresses
    except ValueError:
        return common_name in dns_names


def _mismatch_detail(missing: list[str], extra: list[str]) -> str:
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("not in the order " + ", ".join(extra))
    return "CSR names do not match the order's identifiers: " + "; ".join(parts)
