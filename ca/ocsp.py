"""OCSP responses (RFC 6960), signed by the issuer key or a delegated responder, verified first.

The responder answers for one issuer. A request names a certificate by (hash algorithm, issuer
name hash, issuer key hash, serial) (§4.1.1); one whose hashes are not this issuer's gets
``unauthorized`` (§2.3), a request that does not parse gets ``malformedRequest``. A serial the
issuer never signed is ``unknown`` (§2.2), never ``good``. Request nonces are ignored, as the
RFC 5019 profile allows, so responses can be produced once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from .crl import reason_flag
from .errors import CAError
from .keys.api import SigningKey
from .signing import signature_hash

__all__ = [
    "CertificateState",
    "OcspResponder",
    "OcspResult",
    "Revoked",
    "check_delegated_responder",
    "unsuccessful",
]

# §4.1.1 allows any hash; SHA-1 is what clients send (RFC 5019 §2.1.1), SHA-256 is accepted.
_REQUEST_HASHES: tuple[type[hashes.HashAlgorithm], ...] = (
    hashes.SHA1,
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
)


@dataclass(frozen=True)
class Revoked:
    at: datetime
    reason: int


# None: the issuer never signed this serial. "good": issued and not revoked.
CertificateState = Revoked | str | None


@dataclass(frozen=True)
class OcspResult:
    """A DER OCSP response and, for a successful one, how long it may be cached."""

    der: bytes
    this_update: datetime | None = None
    next_update: datetime | None = None


def unsuccessful(status: ocsp.OCSPResponseStatus) -> OcspResult:
    """An unsigned error response (§2.3): malformedRequest, unauthorized, internalError."""
    return OcspResult(ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(_DER))


_DER = serialization.Encoding.DER


def _key_hash(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """Hash of the issuer's subjectPublicKey BIT STRING value (§4.1.1)."""
    public_key = certificate.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.public_bytes(_DER, serialization.PublicFormat.PKCS1)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        bits = public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        raise ValueError("unsupported issuer key type")
    digest = hashes.Hash(algorithm)
    digest.update(bits)
    return digest.finalize()


def _name_hash(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(certificate.subject.public_bytes())
    return digest.finalize()


def check_delegated_responder(responder: x509.Certificate, issuer: x509.Certificate) -> None:
    """§4.2.2.2: a delegated responder certificate is issued directly by the CA and carries
    id-kp-OCSPSigning.

    Raises:
        ValueError: it is not.
    """
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ValueError(f"not issued by this issuer: {exc}") from None
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise ValueError("delegated OCSP responder lacks id-kp-OCSPSigning")


class OcspResponder:
    """Answers OCSP requests for one issuer.

    Args:
        issuer: the CA certificate whose certificates this responder speaks for.
        signer_key: the issuer's key, or the delegated responder's key.
        lookup: serial -> state of the certificate (see `CertificateState`).
        validity: nextUpdate - thisUpdate of each response.
        responder: the delegated responder certificate, or None to sign as the issuer.
    """

    def __init__(
        self,
        issuer: x509.Certificate,
        signer_key: SigningKey,
        *,
        validity: timedelta,
        responder: x509.Certificate | None = None,
    ) -> None:
        if responder is not None:
            check_delegated_responder(responder, issuer)
        self._issuer = issuer
        self._key = signer_key
        self._responder = responder
        self._validity = validity
        signer = responder or issuer
        if signer.public_key() != signer_key.public_key():
            raise ValueError("the OCSP signing key does not match the responder certificate")
        self._hashes: dict[str, tuple[bytes, bytes]] = {}
        for algorithm_type in _REQUEST_HASHES:
            algorithm = algorithm_type()
            self._hashes[algorithm.name] = (
                _name_hash(issuer, algorithm),
                _key_hash(issuer, algorithm),
            )

    def parse(self, request_der: bytes) -> ocsp.OCSPRequest | OcspResult:
        """The request, or the unsuccessful response it deserves (malformed, unauthorized)."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if self._hashes.get(algorithm.name) != (name_hash, key_hash):
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        return request

    def respond(
        self, request: ocsp.OCSPRequest, state: CertificateState, now: datetime
    ) -> OcspResult:
        """A signed response for ``request`` with the certificate's ``state``.

        Raises:
            CAError: the signed response does not verify with the signer's public key.
        """
        this_update = now.replace(microsecond=0)
        next_update = this_update + self._validity
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=_status(state),
            this_update=this_update,
            next_update=next_update,
            revocation_time=state.at if isinstance(state, Revoked) else None,
            revocation_reason=_reason(state),
        )
        signer = self._responder or self._issuer
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
        if self._responder is not None:
            builder = builder.certificates([self._responder])
        response = builder.sign(self._key, signature_hash(self._key))
        _check_signature(response, signer.public_key())
        return OcspResult(response.public_bytes(_DER), this_update, next_update)


def _status(state: CertificateState) -> ocsp.OCSPCertStatus:
    if isinstance(state, Revoked):
        return ocsp.OCSPCertStatus.REVOKED
    return ocsp.OCSPCertStatus.GOOD if state == "good" else ocsp.OCSPCertStatus.UNKNOWN


def _reason(state: CertificateState) -> x509.ReasonFlags | None:
    if not isinstance(state, Revoked):
        return None
    return reason_flag(state.reason)


def _check_signature(response: ocsp.OCSPResponse, public_key: object) -> None:
    """Verify over tbsResponseData before the response leaves the CA."""
    algorithm = response.signature_hash_algorithm
    assert algorithm is not None
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        else:
            raise CAError("unsupported OCSP signer key type")
    except InvalidSignature:
        raise CAError("signed OCSP response does not verify against its signer") from None
