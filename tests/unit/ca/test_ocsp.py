"""OCSP responses (RFC 6960) from `OcspResponder`, for software and token-held issuer keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certplane.ca.api import IssuanceRequest
from certplane.ca.keys.api import KeyStore
from certplane.ca.ocsp import (
    CertificateState,
    OcspResponder,
    OcspResult,
    Revoked,
    check_delegated_responder,
)

from .conftest import Hierarchy, keystore_intermediate, make_issuer, sibling_intermediate

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
VALIDITY = timedelta(hours=12)


@pytest.fixture
async def leaf(
    hierarchy: Hierarchy, make_request: Callable[..., IssuanceRequest]
) -> x509.Certificate:
    issued = await make_issuer(hierarchy).issue(make_request())
    return x509.load_pem_x509_certificate(issued.certificate_pem.encode())


def request_for(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def answer(responder: OcspResponder, der: bytes, state: CertificateState) -> ocsp.OCSPResponse:
    parsed = responder.parse(der)
    assert not isinstance(parsed, OcspResult), "request refused"
    return ocsp.load_der_ocsp_response(responder.respond(parsed, state, NOW).der)


def test_good(hierarchy: Hierarchy, leaf: x509.Certificate) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    response = answer(responder, request_for(leaf, hierarchy.intermediate), "good")
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number
    assert response.this_update_utc == NOW
    assert response.next_update_utc == NOW + VALIDITY
    assert response.responder_key_hash is not None  # byKey (RFC 5019 §2.2.3)
    assert response.certificates == []  # signed by the issuer itself: no responder cert


def test_revoked_with_time_and_reason(hierarchy: Hierarchy, leaf: x509.Certificate) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    revoked_at = NOW - timedelta(hours=1)
    response = answer(responder, request_for(leaf, hierarchy.intermediate), Revoked(revoked_at, 1))
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == revoked_at
    assert response.revocation_reason is x509.ReasonFlags.key_compromise


def test_revoked_unspecified_has_no_reason(hierarchy: Hierarchy, leaf: x509.Certificate) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    response = answer(responder, request_for(leaf, hierarchy.intermediate), Revoked(NOW, 0))
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_never_issued_is_unknown(hierarchy: Hierarchy, leaf: x509.Certificate) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    response = answer(responder, request_for(leaf, hierarchy.intermediate), None)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384()])
def test_request_hash_algorithms(
    hierarchy: Hierarchy, leaf: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    response = answer(responder, request_for(leaf, hierarchy.intermediate, algorithm), "good")
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.hash_algorithm.name == algorithm.name


def test_nonce_is_ignored(hierarchy: Hierarchy, leaf: x509.Certificate) -> None:
    """RFC 5019 §2.1: responses are pre-producible, so a request nonce is not echoed."""
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    response = answer(
        responder, request_for(leaf, hierarchy.intermediate, nonce=b"\x01" * 32), "good"
    )
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    with pytest.raises(x509.ExtensionNotFound):
        response.extensions.get_extension_for_class(x509.OCSPNonce)


@pytest.mark.parametrize("body", [b"", b"\x30\x03\x02\x01\x01", b"not der at all" * 10])
def test_malformed_request(hierarchy: Hierarchy, body: bytes) -> None:
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    result = responder.parse(body)
    assert isinstance(result, OcspResult)
    parsed = ocsp.load_der_ocsp_response(result.der)
    assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_request_for_another_issuer_is_unauthorized(
    hierarchy: Hierarchy, leaf: x509.Certificate
) -> None:
    """§2.3: the responder answers only for its issuer (another issuer's hashes: unauthorized)."""
    other_issuer = sibling_intermediate(hierarchy)
    responder = OcspResponder(hierarchy.intermediate, hierarchy.intermediate_key, validity=VALIDITY)
    result = responder.parse(request_for(leaf, other_issuer))
    assert isinstance(result, OcspResult)
    status = ocsp.load_der_ocsp_response(result.der).response_status
    assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def delegated_responder_cert(
    h: Hierarchy, key: ec.EllipticCurvePrivateKey, eku: bool = True
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP responder")]))
        .issuer_name(h.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    if eku:
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
        builder = builder.add_extension(usage, critical=False)
    return builder.sign(h.intermediate_key, hashes.SHA256())


def test_delegated_responder_signs_and_is_included(
    hierarchy: Hierarchy, leaf: x509.Certificate
) -> None:
    """§4.2.2.2: a delegated responder certificate issued by the CA with id-kp-OCSPSigning."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = delegated_responder_cert(hierarchy, key)
    responder = OcspResponder(hierarchy.intermediate, key, validity=VALIDITY, responder=cert)
    response = answer(responder, request_for(leaf, hierarchy.intermediate), "good")
    assert response.certificates == [cert]
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert response.signature_hash_algorithm is not None
    public.verify(
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )


def test_delegated_responder_without_ocsp_signing_is_refused(hierarchy: Hierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = delegated_responder_cert(hierarchy, key, eku=False)
    with pytest.raises(ValueError, match="OCSPSigning"):
        check_delegated_responder(cert, hierarchy.intermediate)
    with pytest.raises(ValueError):
        OcspResponder(hierarchy.intermediate, key, validity=VALIDITY, responder=cert)


def test_signing_key_must_match(hierarchy: Hierarchy) -> None:
    with pytest.raises(ValueError, match="does not match"):
        OcspResponder(
            hierarchy.intermediate, ec.generate_private_key(ec.SECP256R1()), validity=VALIDITY
        )


async def test_token_held_issuer_key_signs_responses(
    keystore_factory: Callable[[], KeyStore],
    hierarchy: Hierarchy,
    make_request: Callable[..., IssuanceRequest],
) -> None:
    """The same responder with an issuer key from each keystore (software, SoftHSM2)."""
    issuer = keystore_intermediate(keystore_factory(), hierarchy, "tenant:ocsp")
    intermediate, key = issuer.intermediate, issuer.intermediate_key
    issued = await make_issuer(issuer).issue(make_request())
    leaf = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    responder = OcspResponder(intermediate, key, validity=VALIDITY)
    response = answer(responder, request_for(leaf, intermediate), Revoked(NOW, 4))
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.superseded
