"""The agent's ACME conversation against a real certplane: enrollment with EAB (idempotent),
issuance with each solver (http-01 standalone and webroot, dns-01 by RFC 2136 with TSIG and by
hook), keys made on the host, ARI windows, and refusals that name their cause."""

from __future__ import annotations

import base64
import functools
import http.server
import secrets
import sys
import threading
from pathlib import Path

import josepy as jose
import pytest
from cptest.rfc2136 import UpdateBridge
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.agent.acme_flow import AcmeFailure, AcmeSession
from certplane.agent.keys import csr_pem, generate_key
from certplane.agent.solvers import (
    Dns01Rfc2136,
    HookSolver,
    Http01Standalone,
    Http01Webroot,
    SolverError,
)

TSIG_NAME = "agent-key."
TSIG_SECRET = base64.b64encode(secrets.token_bytes(32)).decode()


def _session(certplane, key: jose.JWK | None = None) -> AcmeSession:
    key = key or jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    return AcmeSession(certplane[1]["directory"], key, None)


def _enrolled(certplane) -> AcmeSession:
    server, _ = certplane
    eab = server.call(lambda: server.provisioner().create_eab("fleet", "agent"))
    session = _session(certplane)
    session.enroll(eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=["ops@fleet.example"])
    return session


def _names_of(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def test_enrollment_is_idempotent_and_needs_a_valid_eab(certplane):
    server, _ = certplane
    eab = server.call(lambda: server.provisioner().create_eab("fleet", "enroll"))
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    session = _session(certplane, key)
    first = session.enroll(eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=[])
    again = session.enroll(eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=[])
    restarted = _session(certplane, key).enroll(
        eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=[]
    )
    assert first == again == restarted and "/acme/fleet/acct/" in first
    stranger = _session(certplane)
    with pytest.raises(AcmeFailure, match="enrollment refused"):
        stranger.enroll(eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=[])  # used up
    with pytest.raises(AcmeFailure, match=r"externalAccountRequired|enrollment refused"):
        _session(certplane).enroll(eab_kid=None, eab_hmac_key=None, contact=[])


def test_http01_standalone(certplane, http01_port):
    session = _enrolled(certplane)
    key = generate_key("ec-p256")
    solver = Http01Standalone("127.0.0.1", http01_port)
    issued = session.issue(csr_pem(key, ["web.fleet.localhost"]), {"http-01": solver})
    assert _names_of(issued.cert_pem) == ["web.fleet.localhost"]
    assert issued.fullchain_pem.startswith(issued.cert_pem.strip())
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert leaf.public_key() == key.public_key()  # the key made here is the certified one


def test_http01_webroot(certplane, http01_port, tmp_path):
    webroot = tmp_path / "www"
    webroot.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(webroot))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", http01_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        solver = Http01Webroot(webroot, lambda path, data: path.write_bytes(data))
        session = _enrolled(certplane)
        issued = session.issue(
            csr_pem(generate_key("rsa-2048"), ["static.fleet.localhost"]), {"http-01": solver}
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert _names_of(issued.cert_pem) == ["static.fleet.localhost"]
    assert list((webroot / ".well-known" / "acme-challenge").iterdir()) == []  # cleaned up


def test_dns01_by_rfc2136_update_with_tsig(certplane, lab):
    with UpdateBridge(lab, TSIG_NAME, TSIG_SECRET) as bridge:
        solver = Dns01Rfc2136(
            server="127.0.0.1", port=bridge.port, zone="fleet.test.",
            key_name=TSIG_NAME, key_secret=TSIG_SECRET,
        )  # fmt: skip
        session = _enrolled(certplane)
        # dns-01 names live outside .localhost (which the test server answers itself)
        names = ["*.apps.fleet.test"]
        issued = session.issue(csr_pem(generate_key("ec-p384"), names), {"dns-01": solver})
    assert _names_of(issued.cert_pem) == sorted(names)
    assert bridge.refused == 0
    assert {action for action, _, _ in bridge.applied} == {"add", "delete"}


def test_a_wrong_tsig_key_is_refused_by_the_dns_server(certplane, lab):
    with UpdateBridge(lab, TSIG_NAME, TSIG_SECRET) as bridge:
        forged = base64.b64encode(secrets.token_bytes(32)).decode()
        solver = Dns01Rfc2136(
            server="127.0.0.1", port=bridge.port, zone="fleet.test.",
            key_name=TSIG_NAME, key_secret=forged,
        )  # fmt: skip
        with pytest.raises(SolverError, match=r"update to 127\.0\.0\.1"):
            solver.present("x.fleet.test", "tok", "value")
    assert bridge.refused == 1 and bridge.applied == []


def test_dns01_by_hook_gets_values_in_its_environment_not_a_shell(certplane, lab, tmp_path):
    record = tmp_path / "calls.txt"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import os, json, urllib.request\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('CERTPLANE_')}\n"
        f"open({str(record)!r}, 'a').write(json.dumps(env) + '\\n')\n"
        "name = '_acme-challenge.' + env['CERTPLANE_IDENTIFIER'].removeprefix('*.') + '.'\n"
        "path = '/set-txt' if env['CERTPLANE_ACTION'] == 'present' else '/clear-txt'\n"
        "body = json.dumps({'host': name, 'value': env['CERTPLANE_VALIDATION']}).encode()\n"
        f"urllib.request.urlopen({lab.management_url!r} + path, body)\n"
    )
    solver = HookSolver("dns-01", [sys.executable, str(hook)])
    issued = _enrolled(certplane).issue(
        csr_pem(generate_key("ec-p256"), ["hooked.fleet.test"]), {"dns-01": solver}
    )
    assert _names_of(issued.cert_pem) == ["hooked.fleet.test"]
    calls = [line for line in record.read_text().splitlines() if line]
    assert [c.count('"CERTPLANE_ACTION"') for c in calls] == [1, 1]
    failing = HookSolver("dns-01", [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(SolverError, match="exited 3"):
        failing.present("x.fleet.localhost", "token", "value")


@pytest.mark.parametrize("token", ["../../etc/passwd", "a/b", "x y", "", "tok\n"])
def test_tokens_that_are_not_base64url_are_refused(tmp_path: Path, token: str):
    solver = Http01Webroot(tmp_path, lambda path, data: path.write_bytes(data))
    with pytest.raises(SolverError, match="base64url"):
        solver.present("x.example", token, "value")
    assert not any(tmp_path.rglob("*passwd*"))


def test_no_solver_for_the_offered_challenges_names_them(certplane):
    session = _enrolled(certplane)
    with pytest.raises(AcmeFailure, match="no configured solver"):
        session.issue(csr_pem(generate_key("ec-p256"), ["none.fleet.localhost"]), {})


def test_a_refused_order_names_the_cause(certplane, http01_port):
    session = _enrolled(certplane)
    solver = Http01Standalone("127.0.0.1", http01_port)
    with pytest.raises(AcmeFailure, match=r"rejectedIdentifier|malformed|unsupportedIdentifier"):
        session.issue(csr_pem(generate_key("ec-p256"), ["bad_name.localhost"]), {"http-01": solver})
