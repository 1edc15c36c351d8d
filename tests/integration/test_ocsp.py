"""The OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019), on SQLite and PostgreSQL.

Leaves carry the responder URL in AIA; `openssl ocsp` asks it and gets good, then revoked.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cptest.jwsclient import b64
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OCSP_REQUEST = "application/ocsp-request"


def issued(flow, slug: str, name: str) -> tuple[object, x509.Certificate, x509.Certificate]:
    f = flow(slug)
    _, pem = f.issued(name)
    leaf, intermediate = x509.load_pem_x509_certificates(pem.encode())
    return f, leaf, intermediate


def ocsp_url(leaf: x509.Certificate) -> str:
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    return str(url)


def request_der(leaf: x509.Certificate, issuer: x509.Certificate, nonce: bool = False) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x07" * 16), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def post(url: str, der: bytes) -> requests.Response:
    return requests.post(url, data=der, headers={"Content-Type": OCSP_REQUEST}, timeout=10)


def get(url: str, der: bytes) -> requests.Response:
    return requests.get(f"{url}/{quote(base64.b64encode(der).decode(), safe='')}", timeout=10)


def status_of(response: requests.Response, issuer: x509.Certificate) -> ocsp.OCSPResponse:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return parsed


def revoke(f, leaf: x509.Certificate, reason: int) -> None:
    body = {"certificate": b64(leaf.public_bytes(Encoding.DER)), "reason": reason}
    assert f.client.post(f.client.directory["revokeCert"], body).status_code == 200


def test_leaf_names_the_responder_of_its_issuer(flow):
    _, leaf, _ = issued(flow, "open", "aia.ocsp.localhost")
    url = ocsp_url(leaf)
    assert "/ocsp/open/" in url


@pytest.mark.parametrize("method", [get, post])
def test_good_then_revoked(flow, method):
    f, leaf, issuer = issued(flow, "open", f"{method.__name__}.ocsp.localhost")
    url = ocsp_url(leaf)
    good = status_of(method(url, request_der(leaf, issuer)), issuer)
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.serial_number == leaf.serial_number
    revoke(f, leaf, 1)
    revoked = status_of(method(url, request_der(leaf, issuer)), issuer)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise


def test_get_is_cacheable_until_next_update(flow):
    _, leaf, issuer = issued(flow, "open", "cache.ocsp.localhost")
    response = get(ocsp_url(leaf), request_der(leaf, issuer))
    parsed = status_of(response, issuer)
    assert "public" in response.headers["Cache-Control"]
    assert "max-age=" in response.headers["Cache-Control"]
    assert response.headers["ETag"]
    assert response.headers["Expires"]
    assert parsed.next_update_utc is not None


def test_nonce_is_ignored_and_the_answer_cached(flow):
    """RFC 5019 §2.1: two requests with different nonces get the same pre-produced response."""
    _, leaf, issuer = issued(flow, "open", "nonce.ocsp.localhost")
    url = ocsp_url(leaf)
    first = post(url, request_der(leaf, issuer, nonce=True)).content
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    other = builder.add_extension(x509.OCSPNonce(b"\x08" * 16), critical=False).build()
    second = post(url, other.public_bytes(Encoding.DER)).content
    assert first == second
    with pytest.raises(x509.ExtensionNotFound):
        ocsp.load_der_ocsp_response(first).extensions.get_extension_for_class(x509.OCSPNonce)


def test_each_request_hash_gets_its_own_cert_id(flow):
    """RFC 6960 §4.2.1: the response's CertID uses the request's hash; a cached SHA-1 answer is
    not served to a SHA-256 request."""
    _, leaf, issuer = issued(flow, "open", "hashes.ocsp.localhost")
    url = ocsp_url(leaf)
    for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA1()):
        der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
        parsed = status_of(post(url, der.public_bytes(Encoding.DER)), issuer)
        assert parsed.hash_algorithm.name == algorithm.name


def test_serial_of_another_tenant_is_unknown(flow):
    """A serial alpha issued, asked of beta's responder with beta's issuer hashes: beta's
    issuer never signed it, so it is unknown there (the serial lookup is tenant-scoped)."""
    _, leaf, _ = issued(flow, "alpha", "serial.ocsp.alpha.localhost")
    _, beta_leaf, beta_issuer = issued(flow, "beta", "serial.ocsp.beta.localhost")
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            _hash(beta_issuer.subject.public_bytes()),
            _hash(_key_bits(beta_issuer)),
            leaf.serial_number,
            hashes.SHA1(),
        )
        .build()
        .public_bytes(Encoding.DER)
    )
    parsed = status_of(post(ocsp_url(beta_leaf), der), beta_issuer)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _key_bits(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import PublicFormat

    return cert.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def test_another_issuers_request_is_unauthorized(flow):
    """Alpha's request (alpha's issuer hashes) sent to beta's responder: not beta's issuer."""
    _, leaf, issuer = issued(flow, "alpha", "tenant.ocsp.alpha.localhost")
    _, beta_leaf, _ = issued(flow, "beta", "tenant.ocsp.beta.localhost")
    response = post(ocsp_url(beta_leaf), request_der(leaf, issuer))
    assert response.status_code == 200
    status = ocsp.load_der_ocsp_response(response.content).response_status
    assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_unknown_issuer_id_is_unauthorized(flow):
    _, leaf, issuer = issued(flow, "open", "issuer.ocsp.localhost")
    url = ocsp_url(leaf).rsplit("/", 1)[0] + "/unknown-issuer-id-0000"
    status = ocsp.load_der_ocsp_response(post(url, request_der(leaf, issuer)).content)
    assert status.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.parametrize("path", ["%%%", "bm90IGFuIG9jc3AgcmVxdWVzdA", "QkNE" * 2000])
def test_malformed_get_is_malformed_request(flow, path):
    _, leaf, _ = issued(flow, "open", f"bad{len(path)}.ocsp.localhost")
    response = requests.get(f"{ocsp_url(leaf)}/{path}", timeout=10)
    assert response.status_code == 200
    status = ocsp.load_der_ocsp_response(response.content).response_status
    assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_post_with_wrong_media_type_is_a_problem(flow):
    _, leaf, issuer = issued(flow, "open", "mediatype.ocsp.localhost")
    response = requests.post(
        ocsp_url(leaf), data=request_der(leaf, issuer), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_openssl_ocsp_good_then_revoked(flow, platform, tmp_path: Path):
    f, leaf, issuer = issued(flow, "open", "openssl.ocsp.localhost")
    files = {
        "leaf.pem": leaf.public_bytes(Encoding.PEM),
        "issuer.pem": issuer.public_bytes(Encoding.PEM),
        "root.pem": platform.root_pem,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def ask() -> str:
        result = subprocess.run(
            ["openssl", "ocsp", "-issuer", "issuer.pem", "-cert", "leaf.pem",
             "-url", ocsp_url(leaf), "-CAfile", "root.pem", "-verify_other", "issuer.pem"],
            cwd=tmp_path, capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Response verify OK" in result.stderr + result.stdout
        return result.stdout

    assert "leaf.pem: good" in ask()
    revoke(f, leaf, 4)
    answer = ask()
    assert "leaf.pem: revoked" in answer
    assert "Reason: superseded" in answer


@pytest.fixture
def responder_url(flow) -> str:
    _, leaf, _ = issued(flow, "open", "fuzz.ocsp.localhost")
    return ocsp_url(leaf)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=600), path=st.text(min_size=1, max_size=200))
def test_hostile_requests_never_fail_the_server(responder_url, body, path):
    """Arbitrary POST bodies and GET paths: an OCSP error response or a 4xx, never a 5xx."""
    for response in (
        post(responder_url, body),
        requests.get(f"{responder_url}/{quote(path, safe='')}", timeout=10),
    ):
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            assert response.headers["Content-Type"] == "application/ocsp-response"
            parsed = ocsp.load_der_ocsp_response(response.content)
            assert parsed.response_status is not ocsp.OCSPResponseStatus.INTERNAL_ERROR


def _prov(server, method: str, *args, **kwargs):
    return server.call(lambda: getattr(server.provisioner(), method)(*args, **kwargs))


def test_delegated_responder_signs_then_is_removed(server, flow, platform, tmp_path):
    """RFC 6960 §4.2.2.2: a responder certificate issued by the CA, with id-kp-OCSPSigning and
    ocsp-nocheck, signs responses and travels in them; `openssl ocsp` accepts it."""
    from certplane.server.ra.provisioning import ProvisioningError

    _f, leaf, issuer = issued(flow, "alpha", "delegated.ocsp.alpha.localhost")
    issuer_id = ocsp_url(leaf).rsplit("/", 1)[1]
    with pytest.raises(ProvisioningError, match="1 to 90 days"):
        _prov(server, "set_ocsp_responder", "alpha", issuer_id, validity_days=365)
    record = _prov(server, "set_ocsp_responder", "alpha", issuer_id, validity_days=7)
    responder = x509.load_pem_x509_certificate(record.ocsp_responder_pem.encode())
    assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    parsed = status_of(post(ocsp_url(leaf), request_der(leaf, issuer)), issuer)
    assert parsed.certificates == [responder]
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    files = {"leaf.pem": leaf, "issuer.pem": issuer}
    for name, cert in files.items():
        (tmp_path / name).write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "root.pem").write_bytes(platform.root_pem)
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", "issuer.pem", "-cert", "leaf.pem", "-url", ocsp_url(leaf),
         "-CAfile", "root.pem", "-verify_other", "issuer.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert "Response verify OK" in result.stdout + result.stderr
    assert "leaf.pem: good" in result.stdout
    _prov(server, "set_ocsp_responder", "alpha", issuer_id, validity_days=None)
    again = status_of(post(ocsp_url(leaf), request_der(leaf, issuer)), issuer)
    assert again.certificates == []  # the issuer signs again


def test_aia_is_chosen_per_tenant(server, flow):
    """RFC 5280 §4.2.2.1: by default leaves name the OCSP responder and the issuer certificate
    (served as DER at that URL); a tenant can leave either out of new certificates."""
    from cryptography.x509.oid import AuthorityInformationAccessOID as AIA

    f, leaf, issuer = issued(flow, "beta", "aia.default.beta.localhost")
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    methods = [d.access_method for d in aia]
    assert methods == [AIA.OCSP, AIA.CA_ISSUERS]
    ca_issuers = next(d.access_location.value for d in aia if d.access_method == AIA.CA_ISSUERS)
    served = requests.get(ca_issuers, timeout=10)
    assert served.headers["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(served.content) == issuer
    assert requests.get(ca_issuers.replace(".der", "x.der"), timeout=10).status_code == 404
    try:
        _prov(server, "set_tenant_aia", "beta", ocsp=False)
        _, no_ocsp = f.issued("aia.noocsp.beta.localhost")
        leaf = x509.load_pem_x509_certificates(no_ocsp.encode())[0]
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert [d.access_method for d in aia] == [AIA.CA_ISSUERS]
        _prov(server, "set_tenant_aia", "beta", ca_issuers=False)
        _, bare = f.issued("aia.none.beta.localhost")
        leaf = x509.load_pem_x509_certificates(bare.encode())[0]
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    finally:
        _prov(server, "set_tenant_aia", "beta", ocsp=True, ca_issuers=True)


def test_pending_and_root_issuers_answer_nothing(server, flow, backend):
    """A customer CA waiting for its certificate and a tenant's own root neither publish a CRL
    nor answer OCSP here (the root key stays offline): 404 and OCSP unauthorized."""
    from certplane.ca.keys.api import KeyAlgorithm
    from certplane.server.model import HierarchyPattern, IssuerStatus
    from certplane.server.ra.provisioning import IssuerSpec

    spec = IssuerSpec(KeyAlgorithm.EC_P256, HierarchyPattern.DEDICATED_ROOT)
    slug = f"ocsp-roots-{backend[:2]}"
    _prov(server, "create_tenant", slug, "Roots", eab_required=False, spec=spec)
    pending = _prov(server, "export_issuer_csr", slug, IssuerSpec(KeyAlgorithm.EC_P256))
    issuers = _prov(server, "issuers", slug)
    (root,) = [i for i in issuers if i.status == IssuerStatus.ROOT.value]
    _, leaf, issuer = issued(flow, "open", "pending.ocsp.localhost")
    base = ocsp_url(leaf).split("/ocsp/")[0]
    for issuer_id in (pending.id, root.id):
        response = post(f"{base}/ocsp/{slug}/{issuer_id}", request_der(leaf, issuer))
        assert response.status_code == 200
        status = ocsp.load_der_ocsp_response(response.content).response_status
        assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED
        assert requests.get(f"{base}/crl/{slug}/{issuer_id}.crl", timeout=10).status_code == 404
