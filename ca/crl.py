"""Certificate revocation lists (RFC 5280 §5), signed by the issuer and verified before release."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from certplane.ca.errors import CAError
from certplane.ca.keys.api import SigningKey
from certplane.ca.signing import authority_key_identifier, signature_hash

# RFC 5280 §5.3.1 CRLReason values by code (7 is unused).
_REASONS: dict[int, x509.ReasonFlags] = {
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: int


def build_crl(
    issuer: x509.Certificate,
    key: SigningKey,
    revoked: Sequence[RevokedEntry],
    *,
    crl_number: int,
    this_update: datetime,
    next_update: datetime,
    distribution_point: str,
) -> x509.CertificateRevocationList:
    """A complete CRL with CRL number, AKI and issuing distribution point (§5.2.1–§5.2.5).

    Reason ``unspecified`` (0) is omitted, as §5.3.1 recommends. Raises ``CAError`` if the
    signature does not verify with the issuer's public key.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(authority_key_identifier(issuer), critical=False)
        .add_extension(_issuing_distribution_point(distribution_point), critical=True)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(_revoked(entry))
    crl = builder.sign(key, signature_hash(key))
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise CAError("signed CRL does not verify against its issuer")
    return crl


def _issuing_distribution_point(url: str) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


def _revoked(entry: RevokedEntry) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(entry.revoked_at)
    )
    reason = reason_flag(entry.reason)
    if reason is not None:
        builder = builder.add_extension(x509.CRLReason(reason), critical=False)
    return builder.build()


def reason_flag(code: int) -> x509.ReasonFlags | None:
    """The CRLReason of a code (§5.3.1); None for unspecified (0), which is left out."""
    return _REASONS.get(code)
