"""ACME Renewal Information (RFC 9773): the certificate identifier and newOrder's ``replaces``.

A replacement order (§5) names the certificate it replaces. certplane exempts such an order
from the new-orders-per-account limit: renewing what was already issued is the traffic ARI
exists to schedule, and the replaced certificate proves the account's history.

NOTE(replaced): a certificate is replaced by at most one live order. §5: the server refuses a
newOrder whose certificate "has already been marked as replaced by a different Order that is
not 'invalid'" with 409 ``alreadyReplaced``. The claim is ``certificates.replaced_by_order``;
it holds while that order's *effective* status (RFC 8555 §7.1.6) is pending, ready,
processing or valid, so a valid replacement blocks every later one for good. An order that
became invalid (refused at finalize by the CA or an approver, expired before issuance, an
authorization failed or deactivated) releases it: the next replacement order takes the claim
over with a guarded update from exactly that order, so of two concurrent newOrders naming the
same certificate exactly one wins.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from certplane.policy.identifiers import Identifier
from certplane.server.errors import AcmeProblem, ProblemType, malformed
from certplane.server.model import Account, Certificate, CertificateStatus, OrderStatus
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


@dataclass(frozen=True)
class Replacement:
    """A newOrder's ``replaces`` (RFC 9773 §5), checked: the certificate it names, the CertID
    as sent, and the invalid order that held the claim (None: no order did)."""

    certificate: Certificate
    cert_id: str
    previous_claim: str | None


async def replacement_of(
    tx: TenantTx,
    account: Account,
    replaces: Any,
    identifiers: Sequence[Identifier],
    now: datetime,
) -> Replacement | None:
    """The certificate a newOrder's ``replaces`` names (RFC 9773 §5), None when absent.

    §5's checks: it must be a certificate of this tenant issued to this account that shares an
    identifier with the order, else ``malformed`` (a certificate of another account is answered
    exactly like one that does not exist); and no other order that is not invalid may have
    claimed it, else ``alreadyReplaced`` (409).
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
    if (
        certificate is None
        or certificate.account_id != account.id
        or not names_certificate(certificate, cert_id)
    ):
        raise malformed("replaces does not name a certificate issued to this account")
    if not set(certificate.identifiers) & set(identifiers):
        raise malformed("replaces names a certificate with none of this order's identifiers")
    claim = certificate.replaced_by_order
    if claim is not None and await _claim_holds(tx, claim, now):
        raise already_replaced(replaces)
    return Replacement(certificate, replaces, claim)


async def claim_replacement(tx: TenantTx, replacement: Replacement, order_id: str) -> None:
    """Mark the certificate as replaced by the new order ``order_id``, in its transaction.

    Raises ``alreadyReplaced`` when another order took the claim since ``replacement_of``
    read it (a concurrent newOrder naming the same certificate).
    """
    claimed = await tx.certificates.claim_replacement(
        replacement.certificate.id, order_id, previous=replacement.previous_claim
    )
    if not claimed:
        raise already_replaced(replacement.cert_id)


def already_replaced(cert_id: str) -> AcmeProblem:
    """RFC 9773 §5: "it MUST return an HTTP 409 (Conflict) with a problem document of type
    'alreadyReplaced'"."""
    return AcmeProblem(
        ProblemType.ALREADY_REPLACED,
        f"certificate {cert_id} is already replaced by another order that is not invalid",
    )


async def _claim_holds(tx: TenantTx, order_id: str, now: datetime) -> bool:
    """Whether the order holding a certificate's claim still holds it: not invalid."""
    loaded = await tx.orders.load(order_id)
    return loaded is not None and loaded.status(now) is not OrderStatus.INVALID


def names_certificate(certificate: Certificate, cert_id: CertId) -> bool:
    """Whether ``certificate`` (looked up by ``cert_id``'s serial) is an issued certificate
    that ``cert_id`` names: its leaf's AKI keyIdentifier must match too (RFC 9773 §4.1)."""
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
