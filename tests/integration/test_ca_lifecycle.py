"""Tenant CAs over their life: several issuers, rotation, the three hierarchy patterns, name
constraints. Every chain a client downloads is checked with `openssl verify` against the trust
anchor the tenant's pattern names, and against the wrong one."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cptest.csr import csr_der
from cptest.jwsclient import b64
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from certplane.ca.hierarchy import create_intermediate, create_root
from certplane.ca.keys.api import KeyAlgorithm
from certplane.server.model import HierarchyPattern, IssuerStatus
from certplane.server.ra.provisioning import IssuerSpec, ProvisioningError


def prov(server, method: str, *args, **kwargs):
    return server.call(lambda: getattr(server.provisioner(), method)(*args, **kwargs))


def download(f, names: list[str], key=None) -> list[x509.Certificate]:
    """Order, validate, finalize with a CSR for ``key``; the chain served."""
    order = f.ready_order(*names)
    response = f.finalize(order, csr_der(names, key))
    assert response.status_code == 200, response.text
    f.server.drain()
    body = f.client.post(order["url"]).json()
    assert body["status"] == "valid", body
    return x509.load_pem_x509_certificates(f.client.post(body["certificate"]).text.encode())


def verify(tmp_path: Path, root_pem: bytes, chain: list[x509.Certificate]) -> bool:
    (tmp_path / "root.pem").write_bytes(root_pem)
    (tmp_path / "leaf.pem").write_bytes(chain[0].public_bytes(Encoding.PEM))
    (tmp_path / "chain.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain[1:]))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.returncode == 0


def test_the_issuer_follows_the_csr_key_type(server, flow):
    """An ECDSA and an RSA intermediate side by side: each signs the leaves of its key type."""
    rsa_issuer = prov(server, "create_issuer", "alpha", IssuerSpec(KeyAlgorithm.RSA_2048))
    f = flow("alpha")
    rsa_chain = download(f, ["rsa.keytype.alpha.localhost"], rsa.generate_private_key(65537, 2048))
    ec_chain = download(f, ["ec.keytype.alpha.localhost"], ec.generate_private_key(ec.SECP256R1()))
    assert isinstance(rsa_chain[1].public_key(), rsa.RSAPublicKey)
    assert rsa_chain[1].public_bytes(Encoding.PEM).decode() in rsa_issuer.certificate_pem
    assert isinstance(ec_chain[1].public_key(), ec.EllipticCurvePublicKey)


def _ocsp_status(leaf: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    url = next(d for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP)
    der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    response = requests.post(
        url.access_location.value,
        data=der.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    return ocsp.load_der_ocsp_response(response.content).certificate_status


def test_rotation_hands_over_issuance_and_keeps_revocation_status(server, flow):
    f = flow("beta")
    old_chain = download(f, ["before.rotate.beta.localhost"])
    (old,) = [i for i in prov(server, "issuers", "beta") if i.status == "active"]
    new = prov(server, "rotate_issuer", "beta", old.id)
    new_chain = download(f, ["after.rotate.beta.localhost"])
    assert new_chain[1] != old_chain[1]
    assert new_chain[1].public_bytes(Encoding.PEM).decode() == new.certificate_pem
    statuses = {i.id: i.status for i in prov(server, "issuers", "beta")}
    assert statuses[old.id] == IssuerStatus.RETIRED.value
    assert statuses[new.id] == IssuerStatus.ACTIVE.value
    # The retired issuer still answers for what it signed: CRL and OCSP.
    leaf = old_chain[0]
    body = {"certificate": b64(leaf.public_bytes(Encoding.DER)), "reason": 4}
    assert f.client.post(f.client.directory["revokeCert"], body).status_code == 200
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl = x509.load_der_x509_crl(requests.get(cdp[0].full_name[0].value, timeout=10).content)
    assert crl.is_signature_valid(old_chain[1].public_key())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    assert _ocsp_status(leaf, old_chain[1]) is ocsp.OCSPCertStatus.REVOKED
    with pytest.raises(ProvisioningError, match="not an active issuer"):
        prov(server, "rotate_issuer", "beta", old.id)


def _new_tenant(server, slug: str, spec: IssuerSpec) -> None:
    prov(server, "create_tenant", slug, slug.title(), eab_required=False, spec=spec)


def test_dedicated_root_hierarchy(server, flow, platform, tmp_path, backend):
    slug = f"dedicated-{backend[:2]}"
    _new_tenant(server, slug, IssuerSpec(KeyAlgorithm.EC_P256, HierarchyPattern.DEDICATED_ROOT))
    issuers = prov(server, "issuers", slug)
    (root,) = [i for i in issuers if i.status == IssuerStatus.ROOT.value]
    (active,) = [i for i in issuers if i.status == IssuerStatus.ACTIVE.value]
    assert active.root_pem == root.certificate_pem
    chain = download(flow(slug), [f"www.{slug}.localhost"])
    assert verify(tmp_path, root.certificate_pem.encode(), chain)
    assert not verify(tmp_path, platform.root_pem, chain)
    # A rotation keeps the tenant's root: the new intermediate is signed by it too.
    rotated = prov(server, "rotate_issuer", slug, active.id)
    assert rotated.root_pem == root.certificate_pem
    assert verify(
        tmp_path, root.certificate_pem.encode(), download(flow(slug), [f"r.{slug}.localhost"])
    )


def _customer_root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    return create_root(key, "Customer Root", "Customer Inc", timedelta(days=3650)), key


def _sign_csr(csr_pem: str, root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    return create_intermediate(
        root, root_key, csr.public_key(), "Customer Issuing CA", "Customer Inc",
        timedelta(days=365),
    )  # fmt: skip


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def test_customer_owned_ca(server, flow, platform, tmp_path, backend):
    """The key is generated here and only a CSR leaves; the customer's root signs it; the
    import checks key, CA-ness and chain; issuance then chains to the customer's root."""
    slug = f"customer-{backend[:2]}"
    _new_tenant(server, slug, IssuerSpec(KeyAlgorithm.EC_P256))
    (previous,) = prov(server, "issuers", slug)
    pending = prov(server, "export_issuer_csr", slug, IssuerSpec(KeyAlgorithm.EC_P256))
    assert pending.status == IssuerStatus.PENDING.value and pending.csr_pem
    root, root_key = _customer_root()
    signed = _sign_csr(pending.csr_pem, root, root_key)
    record = prov(
        server, "import_issuer_certificate", slug, pending.id,
        certificate_pem=_pem(signed), root_pem=_pem(root), replaces=previous.id,
    )  # fmt: skip
    assert record.status == IssuerStatus.ACTIVE.value
    assert record.pattern == HierarchyPattern.CUSTOMER_ROOT.value
    chain = download(flow(slug), [f"www.{slug}.localhost"])
    assert chain[1] == signed
    assert verify(tmp_path, _pem(root).encode(), chain)
    assert not verify(tmp_path, platform.root_pem, chain)
    with pytest.raises(ProvisioningError, match="not waiting for import"):
        prov(server, "import_issuer_certificate", slug, pending.id,
             certificate_pem=_pem(signed), root_pem=_pem(root))  # fmt: skip


def _not_a_ca(csr_pem: str, root: x509.Certificate, root_key) -> x509.Certificate:
    from certplane.ca.hierarchy import create_tls_server_certificate

    csr = x509.load_pem_x509_csr(csr_pem.encode())
    return create_tls_server_certificate(
        root, root_key, csr.public_key(), ["x.example"], [], timedelta(days=30)
    )


@pytest.mark.parametrize(
    "case", ["other-key", "not-a-ca", "wrong-root", "two-certs", "garbage", "root-pathlen-0"]
)
def test_customer_import_is_checked(server, backend, case):
    slug = f"import-{case}-{backend[:2]}"
    _new_tenant(server, slug, IssuerSpec(KeyAlgorithm.EC_P256))
    pending = prov(server, "export_issuer_csr", slug, IssuerSpec(KeyAlgorithm.EC_P256))
    root, root_key = _customer_root()
    signed = _pem(_sign_csr(pending.csr_pem, root, root_key))
    root_pem = _pem(root)
    if case == "other-key":
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        signed = _pem(create_intermediate(root, root_key, other, "X", "Y", timedelta(days=30)))
    elif case == "not-a-ca":
        signed = _pem(_not_a_ca(pending.csr_pem, root, root_key))
    elif case == "wrong-root":
        root_pem = _pem(_customer_root()[0])
    elif case == "two-certs":
        signed = signed + signed
    elif case == "root-pathlen-0":
        # A root that may not have CAs below it: every leaf would fail path validation.
        tight_key = ec.generate_private_key(ec.SECP384R1())
        tight = create_root(tight_key, "Tight Root", "Customer Inc", timedelta(days=365),
                            path_length=0)  # fmt: skip
        root_pem = _pem(tight)
        signed = _pem(_tight_intermediate(pending.csr_pem, tight, tight_key))
    else:
        signed = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    with pytest.raises(ProvisioningError, match="certificate refused"):
        prov(server, "import_issuer_certificate", slug, pending.id,
             certificate_pem=signed, root_pem=root_pem)  # fmt: skip
    statuses = [i.status for i in prov(server, "issuers", slug)]
    assert statuses.count(IssuerStatus.PENDING.value) == 1  # nothing half-activated


def test_name_constrained_tenant(server, flow, backend):
    """The intermediate carries critical nameConstraints; the CA refuses names outside them."""
    slug = f"narrow-{backend[:2]}"
    spec = IssuerSpec(KeyAlgorithm.EC_P256, permitted_dns_names=(f"in.{slug}.localhost",))
    _new_tenant(server, slug, spec)
    f = flow(slug)
    chain = download(f, [f"www.in.{slug}.localhost"])
    constraints = chain[1].extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    order = f.ready_order(f"out.{slug}.localhost")
    f.finalize(order)
    f.server.drain()
    body = f.client.post(order["url"]).json()
    assert body["status"] == "invalid"
    assert "name constraints" in body["error"]["detail"]


def _manual_ca(
    subject: x509.Name,
    public_key,
    issuer: x509.Certificate,
    issuer_key,
    window: tuple,
    path_length: int | None,
) -> x509.Certificate:
    """A CA certificate built by hand, around our own builders' checks (what a customer's CA
    might hand back)."""
    from certplane.ca.signing import authority_key_identifier, subject_key_identifier

    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(window[0])
        .not_valid_after(window[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(subject_key_identifier(public_key), critical=False)
        .add_extension(authority_key_identifier(issuer), critical=False)
        .sign(issuer_key, hashes.SHA384())
    )


def _cross_sign(subject_root: x509.Certificate, by: x509.Certificate, by_key) -> x509.Certificate:
    """``subject_root``'s name and key, certified by another root (a cross-sign)."""
    window = (
        subject_root.not_valid_before_utc,
        subject_root.not_valid_after_utc - timedelta(days=1),
    )
    return _manual_ca(subject_root.subject, subject_root.public_key(), by, by_key, window, None)


def test_alternate_chain_through_a_cross_signed_root(server, flow, tmp_path, backend):
    """RFC 8555 §7.4.2: the customer's root is also cross-signed by an older root; downloads
    link the chain through the cross-sign with rel="alternate", and it verifies to the old root."""
    slug = f"crossed-{backend[:2]}"
    _new_tenant(server, slug, IssuerSpec(KeyAlgorithm.EC_P256))
    (previous,) = prov(server, "issuers", slug)
    pending = prov(server, "export_issuer_csr", slug, IssuerSpec(KeyAlgorithm.EC_P256))
    root, root_key = _customer_root()
    old_root_key = ec.generate_private_key(ec.SECP384R1())
    old_root = create_root(old_root_key, "Old Root", "Customer Inc", timedelta(days=7300),
                           path_length=None)  # fmt: skip
    cross = _cross_sign(root, old_root, old_root_key)
    signed = _sign_csr(pending.csr_pem, root, root_key)
    prov(server, "import_issuer_certificate", slug, pending.id, certificate_pem=_pem(signed),
         root_pem=_pem(root), replaces=previous.id)  # fmt: skip
    record = prov(server, "add_alternate_chain", slug, pending.id, _pem(cross))
    assert len(record.alternate_chains) == 1
    stray_root, stray_key = _customer_root()
    stray_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    stray = create_intermediate(
        stray_root, stray_key, stray_public, "Stray", "Elsewhere", timedelta(days=30)
    )
    refusals = [(_pem(cross), "already offered"), (_pem(old_root), "self-signed"),
                (_pem(stray), "is not signed by"), ("junk", "not a list of PEM")]  # fmt: skip
    for bad, why in refusals:
        with pytest.raises(ProvisioningError, match=why):
            prov(server, "add_alternate_chain", slug, pending.id, bad)

    f = flow(slug)
    order = f.ready_order(f"www.{slug}.localhost")
    assert f.finalize(order).status_code == 200
    f.server.drain()
    cert_url = f.client.post(order["url"]).json()["certificate"]
    default = f.client.post(cert_url)
    alternate_url = default.links["alternate"]["url"]
    assert alternate_url == cert_url + "/1"
    alternate = f.client.post(alternate_url)
    assert alternate.status_code == 200
    assert alternate.links["alternate"]["url"] == cert_url
    chain = x509.load_pem_x509_certificates(alternate.text.encode())
    default_chain = x509.load_pem_x509_certificates(default.text.encode())
    assert chain[0] == default_chain[0] and chain[1:] == [signed, cross]
    assert verify(tmp_path, _pem(old_root).encode(), chain)
    assert verify(tmp_path, _pem(root).encode(), default_chain)
    assert not verify(tmp_path, _pem(old_root).encode(), default_chain)
    assert f.client.post(cert_url + "/2").status_code == 404
    stranger = flow(slug)
    assert stranger.client.post(alternate_url).status_code == 404


def _tight_intermediate(csr_pem: str, root: x509.Certificate, root_key) -> x509.Certificate:
    """An intermediate signed by a pathLen-0 root, bypassing our own builder's refusal."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    start = root.not_valid_before_utc + timedelta(hours=1)
    window = (start, start + timedelta(days=30))
    return _manual_ca(csr.subject, csr.public_key(), root, root_key, window, 0)
