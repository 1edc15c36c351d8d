"""Signing certificates: hash choice, key identifiers, and sign-then-verify.

Shared by the local issuer (leaves) and the hierarchy builder (CA certificates). Every
certificate is verified against its issuer right after signing, so a faulty key or token can never
hand out a certificate that does not chain.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from .errors import CAError, IssuanceRefused
from .keys.api import SigningKey

__all__ = [
    "MAX_SERIAL",
    "authority_key_identifier",
    "check_key_pair",
    "check_serial",
    "check_within_issuer",
    "sign_and_verify",
    "signature_hash",
    "subject_key_identifier",
]

MAX_SERIAL = (1 << 159) - 1
"""The largest serial whose DER INTEGER fits in 20 octets (RFC 5280 §4.1.2.2)."""

_EC_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384]] = {
    ec.SECP256R1.name: hashes.SHA256,
    ec.SECP384R1.name: hashes.SHA384,
}


def signature_hash(issuer_key: SigningKey) -> hashes.SHA256 | hashes.SHA384:
    """The digest for signatures by `issuer_key`: SHA-384 for P-384, SHA-256 for P-256 and RSA.

    Matches the curve's strength as RFC 5758 §3.2 and the CA/B Forum BR §7.1.3.2 pair them.

    Raises:
        ValueError: an EC key on any other curve.
    """
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return hashes.SHA256()
    digest = _EC_HASHES.get(issuer_key.curve.name)
    if digest is None:
        raise ValueError(f"unsupported issuer curve {issuer_key.curve.name}")
    return digest()


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_key_pair(certificate: x509.Certificate, key: SigningKey) -> None:
    """Raise ValueError unless `key` is the private half of `certificate`'s public key."""
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise ValueError("the signing key does not match the issuer certificate's public key")


def subject_key_identifier(public_key: CertificatePublicKeyTypes) -> x509.SubjectKeyIdentifier:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 5280 §4.2.1.2, method 1)."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's SKI as keyIdentifier (RFC 5280 §4.2.1.1); derived from its key if absent."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = subject_key_identifier(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def check_serial(serial: int) -> None:
    """Refuse serials that are not positive or do not fit in 20 octets (RFC 5280 §4.1.2.2)."""
    if not 0 < serial <= MAX_SERIAL:
        raise IssuanceRefused("serial number must be positive and at most 20 octets")


def check_within_issuer(not_after: datetime, issuer: x509.Certificate) -> None:
    """Refuse a notAfter beyond the issuer's: such a certificate would outlive its chain."""
    issuer_not_after = issuer.not_valid_after_utc
    if not_after > issuer_not_after:
        raise IssuanceRefused(
            f"notAfter {not_after.isoformat()} is after the issuer's notAfter "
            f"{issuer_not_after.isoformat()}"
        )


def sign_and_verify(
    builder: x509.CertificateBuilder,
    issuer_key: SigningKey,
    issuer: x509.Certificate | None,
) -> x509.Certificate:
    """Sign `builder` and verify the signature with the issuer's public key.

    `issuer` is None for a self-signed certificate, which is then verified against itself.

    Raises:
        CAError: the signature does not verify (a faulty key or token).
    """
    certificate = builder.sign(issuer_key, signature_hash(issuer_key))
    try:
        certificate.verify_directly_issued_by(issuer or certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CAError("signed certificate does not verify against its issuer") from exc
    return certificate
