"""ACME Renewal Information (RFC 9773): the certificate identifier and newOrder's ``replaces``.

A replacement order (§5) names the certificate it replaces. certplane exempts such an order
from the new-orders-per-account limit: renewing what was already issued is the traffic ARI
exists to schedule, and the replaced certificate proves the account's history.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certplane.policy.identifiers import Identifier
from certplane.server.errors import malformed
from certplane.server.model import Account, Certificate, CertificateStatus
from certplane.server.storage.uow import TenantTx

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
# RFC 5280 §4.1.2.2: at most 20 octets (not counting a leading zero octet that keeps it positive).
MAX_SERIAL_OCTETS = 20


@dataclass(frozen=True)
class CertId:
    """RFC 9773 §4.1: the AKI keyIdentifier of the certificate and its serial number."""

    key_identifier: bytes
    serial: int


def parse_cert_id(text: str) -> CertId:
    """``base64url(AKI keyIdentifier) "." base64url(serialNumber)`` (RFC 9773 §4.1), both
    unpadded; the serial as the content octets of its DER INTEGER (no tag, no length).

    Raises:
        ValueError: not that form; the message says which part is wrong.
    """
    aki_text, sep, serial_text = text.partition(".")
    if not sep:
        raise ValueError("expected base64url(keyIdentifier) '.' base64url(serial)")
    key_identifier = _unpadded_b64url(aki_text, "keyIdentifier")
    return CertId(key_identifier, _der_serial(_unpadded_b64url(serial_text, "serial")))


def cert_id_of(certificate: x509.Certificate) -> str:
    """The RFC 9773 §4.1 identifier of ``certificate`` (it must carry an AKI keyIdentifier)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial = certificate.serial_number
    der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # a sign octet when needed
    return f"{_b64url(aki.key_identifier)}.{_b64url(der)}"


async def replaced_certificate(
    tx: TenantTx, account: Account, replaces: Any, identifiers: Sequence[Identifier]
) -> Certificate | None:
    """The certificate a newOrder's ``replaces`` names (RFC 9773 §5), None when absent.

    It must be a certificate of this tenant issued to this account that shares an identifier
    with the order (§5: "SHOULD"); anything else is ``malformed``. A certificate of another
    account is answered exactly like one that does not exist.
    """
    if replaces is None:
        return None
    if not isinstance(replaces, str):
        raise malformed("replaces must be a string: the ARI CertID of the certificate replaced")
    try:
        cert_id = parse_cert_id(replaces)
    except ValueError as exc:
        raise malformed(f"replaces is not an ARI CertID (RFC 9773 §4.1): {exc}") from None
    certificate = await tx.certificates.get_by_serial(format(cert_id.serial, "x"))
    if not _names(certificate, account, cert_id):
        raise malformed("replaces does not name a certificate issued to this account")
    assert certificate is not None
    if not set(certificate.identifiers) & set(identifiers):
        raise malformed("replaces names a certificate with none of this order's identifiers")
    return certificate


def _names(certificate: Certificate | None, account: Account, cert_id: CertId) -> bool:
    """Whether ``certificate`` is an issued certificate of ``account`` that ``cert_id`` names
    (its serial was looked up; the AKI must match the leaf's too)."""
    if certificate is None or certificate.account_id != account.id:
        return False
    if certificate.status not in (CertificateStatus.ISSUED, CertificateStatus.REVOKED):
        return False
    if not certificate.chain_pem:
        return False
    leaf = x509.load_pem_x509_certificate(certificate.chain_pem.encode())
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    return aki.key_identifier == cert_id.key_identifier


def _unpadded_b64url(text: str, part: str) -> bytes:
    """Canonical unpadded base64url (RFC 4648 §5): no '=', no stray bits, not empty."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError(f"the {part} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError(f"the {part} is not unpadded base64url") from None
    if _b64url(raw) != text:
        raise ValueError(f"the {part} is not canonical base64url")
    return raw


def _der_serial(octets: bytes) -> int:
    """A positive serial number from its DER INTEGER content octets (X.690 §8.3: minimal
    two's complement; RFC 5280 §4.1.2.2: positive, at most 20 octets)."""
    if octets[0] & 0x80:
        raise ValueError("the serial is negative")
    if len(octets) > 1 and octets[0] == 0 and not octets[1] & 0x80:
        raise ValueError("the serial is not minimally encoded (DER)")
    if len(octets) - (octets[0] == 0) > MAX_SERIAL_OCTETS:
        raise ValueError(f"the serial is longer than {MAX_SERIAL_OCTETS} octets")
    serial = int.from_bytes(octets, "big")
    if serial == 0:
        raise ValueError("the serial is zero")
    return serial


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
