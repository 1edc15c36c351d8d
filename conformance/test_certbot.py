"""certbot, the reference ACME client, against the target: RFC 8555 end to end.

Each test runs the real ``certbot`` CLI in a home of its own and checks what a user sees: exit
status, the files written, the certificates (names, key type, signed by the chain's issuer),
and every ACME exchange certbot logged, each held to the suite's error baseline (no 5xx, errors
are problem documents with a registered type and a matching status, Replay-Nonce on POSTs).

http-01 runs ``--standalone`` on 127.0.0.2 (the lab resolves these names there, while the
suite's own responder holds 127.0.0.1); dns-01 runs ``--manual`` with hooks that publish TXT
records in the lab's DNS through pebble-challtestsrv's management API.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cptest.conf_acme import problem, raw_client, unique
from cptest.conf_clients import (
    CertbotLab,
    account_key,
    assert_issued_by_chain,
    check_exchanges,
    revoke_again_problem,
)
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@pytest.fixture
def lab(target, tmp_path) -> CertbotLab:
    return CertbotLab.for_target(target, tmp_path)


def test_register_without_eab(lab):
    """§7.3: newAccount with a contact and termsOfServiceAgreed creates an account."""
    home = lab.home()
    run = home.run("register")
    check_exchanges(run)
    account = home.account()
    assert account["uri"].startswith("http")
    shown = home.run("show_account").output
    assert account["uri"] in shown and "ops@example.com" in shown


def test_register_with_eab(lab, target, second):
    """§7.3.4: certbot's --eab-kid/--eab-hmac-key bind the account at a directory that
    requires External Account Binding."""
    eab = target.new_eab()
    if eab is None:
        pytest.skip(f"{target.name} hands out no EAB keys")
    home = lab.home(second)
    # §7.1.1: the directory's meta.externalAccountRequired is what tells certbot to refuse.
    refused = home.run("register", check=False)
    assert refused.returncode != 0
    assert "external account binding" in refused.output
    assert refused.posts_to(lab.directory(second)["newAccount"]) == []
    run = home.run("register", f"--eab-kid={eab.kid}", f"--eab-hmac-key={eab.hmac_key}")
    check_exchanges(run)
    created = run.posts_to(lab.directory(second)["newAccount"])
    assert [e.status for e in created] == [201]
    assert "externalAccountBinding" in created[0].payload()
    assert home.account()["uri"] == created[0].headers["location"]


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_http01_standalone(lab, key_type):
    """§8.3 http-01 with certbot's standalone server; §7.4 finalize and download. The
    certificate names exactly the requested domain and certifies certbot's key (ECDSA P-256
    or RSA 2048)."""
    home = lab.home()
    name = lab.standalone_name()
    run = home.run(*lab.standalone(name), "--key-type", key_type, "--rsa-key-size", "2048")
    check_exchanges(run)
    lineage = home.lineage(name)
    assert lineage.dns_names() == [name]
    expected = ec.EllipticCurvePublicKey if key_type == "ecdsa" else rsa.RSAPublicKey
    assert isinstance(lineage.cert.public_key(), expected)
    assert lineage.cert.public_key() == lineage.privkey.public_key()
    assert_issued_by_chain(lineage)


def test_dns01_manual_wildcard(lab):
    """§8.4 dns-01 and §7.1.3 wildcards: certbot's manual hooks publish the TXT record; one
    certificate for the name and its wildcard."""
    home = lab.home()
    base = unique("wild")
    run = home.run(*lab.manual_dns(), "-d", base, "-d", f"*.{base}", "--cert-name", base)
    check_exchanges(run)
    assert home.lineage(base).dns_names() == sorted([base, f"*.{base}"])
    published = [call for call in lab.hook_calls() if call[0] == "auth"]
    assert len(published) == 2 and {c[1] for c in published} == {base}


def test_renew_force_renewal(lab):
    """§7.4: renewal is a new order; the new certificate has a new serial, the same names
    and (certbot's default) a new key."""
    home = lab.home()
    name = lab.standalone_name()
    home.run(*lab.standalone(name))
    before = home.lineage(name)
    run = home.run(
        "renew", "--force-renewal", "--no-random-sleep-on-renew", *lab.standalone_flags()
    )
    check_exchanges(run)
    after = home.lineage(name)
    assert after.cert.serial_number != before.cert.serial_number
    assert after.dns_names() == [name]
    assert_issued_by_chain(after)


def test_revoke_by_account(lab):
    """§7.6: the account that ordered the certificate revokes it (JWS signed with its kid);
    revoking again answers alreadyRevoked."""
    home = lab.home()
    name = lab.standalone_name()
    home.run(*lab.standalone(name))
    cert_path = home.live(name) / "cert.pem"
    run = home.run(
        "revoke", "--cert-path", str(cert_path), "--reason", "superseded",
        "--no-delete-after-revoke",
    )  # fmt: skip
    check_exchanges(run)
    revoke = run.posts_to(lab.directory()["revokeCert"])
    assert [e.status for e in revoke] == [200] and "kid" in revoke[0].protected()
    assert revoke[0].payload()["reason"] == 4
    assert revoke_again_problem(home, cert_path) == "alreadyRevoked"


def test_revoke_by_certificate_key(lab, tmp_path: Path):
    """§7.6: a request signed with the certificate's own key (a "jwk" JWS) revokes it, even
    from a client with no account at all."""
    owner = lab.home()
    name = lab.standalone_name()
    owner.run(*lab.standalone(name))
    stranger = lab.home(root=tmp_path / "stranger")
    cert, key = owner.live(name) / "cert.pem", owner.live(name) / "privkey.pem"
    run = stranger.run(
        "revoke", "--cert-path", str(cert), "--key-path", str(key), "--no-delete-after-revoke"
    )
    check_exchanges(run)
    revoke = run.posts_to(lab.directory()["revokeCert"])
    assert [e.status for e in revoke] == [200] and "jwk" in revoke[0].protected()
    assert revoke_again_problem(owner, cert) == "alreadyRevoked"


def test_update_account(lab):
    """§7.3.2: an account update replaces the contact list."""
    home = lab.home()
    home.run("register")
    run = home.run("update_account", email="new@example.com")
    check_exchanges(run)
    updates = run.posts_to(home.account()["uri"])
    assert updates and updates[-1].status == 200
    assert updates[-1].json()["contact"] == ["mailto:new@example.com"]
    assert "new@example.com" in home.run("show_account").output


def test_unregister(lab, target):
    """§7.3.6: deactivation answers the account object with status "deactivated"; the
    account can no longer order."""
    home = lab.home()
    home.run("register")
    uri, key = home.account()["uri"], account_key(home)
    run = home.run("unregister")
    check_exchanges(run)
    deactivation = [e for e in run.posts_to(uri) if e.payload() == {"status": "deactivated"}]
    assert [e.status for e in deactivation] == [200]
    assert deactivation[0].json()["status"] == "deactivated"
    assert home.account_dirs() == []
    client = raw_client(target, key=key)
    client.kid = uri
    problem(client.new_order(unique()), "unauthorized")


def test_lifecycle_against_hostile_server(hostile, tmp_path):
    """§6.5: "the client SHOULD retry the request using the new nonce"; §7.4/§7.5.1: clients
    poll while a challenge or an order is "processing". certbot registers, issues over http-01
    and dns-01, renews and revokes against certplane with its hostile knobs on."""
    lab = CertbotLab.for_target(hostile, tmp_path)
    home = lab.home()
    name = lab.standalone_name()
    runs = [home.run(*lab.standalone(name))]
    base = unique("wild")
    runs.append(home.run(*lab.manual_dns(), "-d", f"*.{base}", "--cert-name", base))
    runs.append(home.run("renew", "--force-renewal", "--no-random-sleep-on-renew"))
    cert_path = home.live(name) / "cert.pem"
    runs.append(home.run("revoke", "--cert-path", str(cert_path), "--no-delete-after-revoke"))
    for run in runs:
        check_exchanges(run)
    problems = [p for run in runs for p in run.problem_types()]
    assert "urn:ietf:params:acme:error:badNonce" in problems
    statuses = [
        e.json().get("status")
        for run in runs
        for e in run.exchanges()
        if e.status == 200 and e.body.startswith("{")
    ]
    assert "processing" in statuses
    assert home.lineage(base).dns_names() == [f"*.{base}"]
    assert revoke_again_problem(home, cert_path) == "alreadyRevoked"
