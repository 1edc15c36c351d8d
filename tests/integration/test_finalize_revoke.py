"""Finalize, certificate download and revocation (RFC 8555 §7.4, §7.4.2, §7.6)."""

from __future__ import annotations

import pytest
from cptest.csr import csr_der
from cptest.jwsclient import ERR, RawClient, b64, problem
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _type(response) -> str:
    return problem(response)["type"].removeprefix(ERR)


def _der(pem: str) -> bytes:
    return x509.load_pem_x509_certificates(pem.encode())[0].public_bytes(serialization.Encoding.DER)


def test_finalize_issues_inline_and_downloads_the_chain(flow):
    f = flow("open")
    order = f.ready_order("one.fin.localhost", "two.fin.localhost")
    response = f.finalize(order)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "valid"
    assert "Retry-After" not in response.headers
    download = f.client.post(body["certificate"])
    assert download.headers["Content-Type"].startswith("application/pem-certificate-chain")
    leaf, intermediate = x509.load_pem_x509_certificates(download.content)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "one.fin.localhost",
        "two.fin.localhost",
    ]
    leaf.verify_directly_issued_by(intermediate)
    assert leaf.serial_number.bit_length() >= 64
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value.endswith(".crl")
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days in (89, 90)


def test_finalize_before_ready_is_order_not_ready(flow):
    f = flow("open")
    order = f.order("early.fin.localhost")
    response = f.finalize(order)
    assert response.status_code == 403
    assert _type(response) == "orderNotReady"


def test_finalize_twice_is_order_not_ready(flow):
    f = flow("open")
    order, _ = f.issued("again.fin.localhost")
    assert _type(f.finalize(order)) == "orderNotReady"


@pytest.mark.parametrize(
    "case", ["garbage", "extra", "missing", "cn", "account-key", "weak", "uri-san"]
)
def test_bad_csrs(flow, case):
    f = flow("open")
    order = f.ready_order("csr.fin.localhost")
    der = {
        "garbage": lambda: b"not a csr",
        "extra": lambda: csr_der(["csr.fin.localhost", "extra.fin.localhost"]),
        "missing": lambda: csr_der([]),
        "cn": lambda: csr_der(["csr.fin.localhost"], cn="other.fin.localhost"),
        "account-key": lambda: csr_der(["csr.fin.localhost"], f.client.key),
        "weak": lambda: csr_der(["csr.fin.localhost"], rsa.generate_private_key(65537, 1024)),
        "uri-san": lambda: csr_der(
            ["csr.fin.localhost"], extra_sans=(x509.UniformResourceIdentifier("https://x"),)
        ),
    }[case]()
    response = f.finalize(order, der)
    expected = "badPublicKey" if case == "weak" else "badCSR"
    assert _type(response) == expected
    assert f.client.post(order["url"]).json()["status"] == "ready"


def test_finalize_without_csr_is_malformed(flow):
    f = flow("open")
    order = f.ready_order("nocsr.fin.localhost")
    assert _type(f.client.post(order["finalize"], {})) == "malformed"
    assert _type(f.client.post(order["finalize"], {"csr": "a+b/"})) == "malformed"


def test_rsa_and_p384_certificate_keys(flow):
    f = flow("open")
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())):
        order = f.ready_order("keys.fin.localhost")
        response = f.finalize(order, csr_der(["keys.fin.localhost"], key))
        assert response.json()["status"] == "valid"


def test_certificate_of_another_account_is_not_found(flow, register):
    f = flow("open")
    order, _ = f.issued("private.fin.localhost")
    other = register("open")
    response = other.post(order["certificate"])
    assert response.status_code == 404


def test_revoke_by_issuing_account_then_already_revoked(flow):
    f = flow("open")
    _, pem = f.issued("revoke.fin.localhost")
    url = f.client.directory["revokeCert"]
    response = f.client.post(url, {"certificate": b64(_der(pem)), "reason": 1})
    assert response.status_code == 200
    again = f.client.post(url, {"certificate": b64(_der(pem))})
    assert _type(again) == "alreadyRevoked"


@pytest.mark.parametrize("reason", [2, 6, 7, 8, 9, 10, 11, -1, "1", True])
def test_bad_revocation_reasons(flow, reason):
    f = flow("open")
    _, pem = f.issued("reason.fin.localhost")
    response = f.client.post(
        f.client.directory["revokeCert"], {"certificate": b64(_der(pem)), "reason": reason}
    )
    assert _type(response) in ("badRevocationReason", "malformed")
    if isinstance(reason, int) and not isinstance(reason, bool):
        assert _type(response) == "badRevocationReason"


def test_revoke_by_unrelated_account_is_unauthorized(flow, register):
    f = flow("open")
    _, pem = f.issued("unrelated.fin.localhost")
    other = register("open")
    response = other.post(other.directory["revokeCert"], {"certificate": b64(_der(pem))})
    assert response.status_code == 403 and _type(response) == "unauthorized"


def test_revoke_by_account_holding_authorizations(flow, register):
    f = flow("open")
    _, pem = f.issued("holder.fin.localhost")
    g = flow("open")
    g.ready_order("holder.fin.localhost")
    response = g.client.post(g.client.directory["revokeCert"], {"certificate": b64(_der(pem))})
    assert response.status_code == 200


def test_revoke_with_the_certificate_key(flow, platform):
    f = flow("open")
    key = ec.generate_private_key(ec.SECP256R1())
    order = f.ready_order("bykey.fin.localhost")
    body = f.finalize(order, csr_der(["bykey.fin.localhost"], key)).json()
    pem = f.client.post(body["certificate"]).text
    signer = RawClient(platform.directory("open"), key=key)
    response = signer.post(
        signer.directory["revokeCert"], {"certificate": b64(_der(pem))}, use_jwk=True
    )
    assert response.status_code == 200, response.text
    wrong = RawClient(platform.directory("open"))
    again = wrong.post(wrong.directory["revokeCert"], {"certificate": b64(_der(pem))}, use_jwk=True)
    assert _type(again) == "alreadyRevoked"


def test_revoke_with_a_different_key_is_unauthorized(flow, platform):
    f = flow("open")
    _, pem = f.issued("wrongkey.fin.localhost")
    stranger = RawClient(platform.directory("open"))
    response = stranger.post(
        stranger.directory["revokeCert"], {"certificate": b64(_der(pem))}, use_jwk=True
    )
    assert _type(response) == "unauthorized"


def test_revoke_unknown_or_garbage_certificate(flow, register):
    f = flow("open")
    url = f.client.directory["revokeCert"]
    assert _type(f.client.post(url, {"certificate": b64(b"garbage")})) == "malformed"
    assert _type(f.client.post(url, {})) == "malformed"
    foreign = flow("open")
    _, pem = foreign.issued("forge.fin.localhost")
    cert = x509.load_pem_x509_certificates(pem.encode())[0]
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .sign(
            key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()
        )
    )
    response = f.client.post(
        url, {"certificate": b64(forged.public_bytes(serialization.Encoding.DER))}
    )
    assert response.status_code == 404


def test_crl_at_the_distribution_point_lists_revocations(flow, tmp_path):
    import subprocess

    import requests

    f = flow("open")
    _, pem = f.issued("crl.fin.localhost")
    leaf, intermediate = x509.load_pem_x509_certificates(pem.encode())
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = cdp[0].full_name[0].value
    before = requests.get(url, timeout=10)
    assert before.status_code == 200
    assert before.headers["Content-Type"] == "application/pkix-crl"
    assert "max-age=" in before.headers["Cache-Control"]
    crl = x509.load_der_x509_crl(before.content)
    assert crl.is_signature_valid(intermediate.public_key())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is None

    response = f.client.post(
        f.client.directory["revokeCert"], {"certificate": b64(_der(pem)), "reason": 1}
    )
    assert response.status_code == 200
    after = x509.load_der_x509_crl(requests.get(url, timeout=10).content)
    entry = after.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number >= crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    (tmp_path / "crl.der").write_bytes(requests.get(url, timeout=10).content)
    parsed = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert format(leaf.serial_number, "X") in parsed.stdout.replace(":", "").upper()
    missing = requests.get(url.rsplit("/", 1)[0] + "/nope.crl", timeout=10)
    assert missing.status_code == 404


def test_crl_numbers_increase_and_caching_follows_next_update(flow):
    """RFC 5280 §5.2.3: the CRL number increases with each new CRL; the HTTP cache lifetime
    ends at the CRL's nextUpdate."""
    import requests

    f = flow("open")
    _, pem = f.issued("crlnum.fin.localhost")
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    url = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0]
    url = url.full_name[0].value
    first = requests.get(url, timeout=10)
    before = x509.load_der_x509_crl(first.content)
    number = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    max_age = int(first.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert before.next_update_utc is not None and before.last_update_utc is not None
    lifetime = (before.next_update_utc - before.last_update_utc).total_seconds()
    assert lifetime - 120 <= max_age <= lifetime
    revoked = f.client.post(
        f.client.directory["revokeCert"], {"certificate": b64(_der(pem)), "reason": 4}
    )
    assert revoked.status_code == 200
    after = x509.load_der_x509_crl(requests.get(url, timeout=10).content)
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number


def test_crl_numbers_come_from_the_database_without_repeats(server, flow):
    """Concurrent reservations (as from several replicas) get distinct, increasing numbers."""
    import asyncio

    from certplane.server.app import SERVICES
    from certplane.server.storage.scope import TenantScope

    f = flow("open")
    _, pem = f.issued("crlseq.fin.localhost")
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    url = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0]
    issuer_id = url.full_name[0].value.rsplit("/", 1)[1].removesuffix(".crl")
    crls = server.app[SERVICES].crls

    async def reserve_many() -> list[int]:
        async with server.app[SERVICES].uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug("open")
        scope = TenantScope(tenant.id, tenant.slug)
        return list(await asyncio.gather(*(crls._next_number(scope, issuer_id) for _ in range(8))))

    numbers = server.call(reserve_many)
    assert len(set(numbers)) == 8
    assert sorted(numbers) == list(range(min(numbers), min(numbers) + 8))
