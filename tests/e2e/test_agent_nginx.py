"""certplane-agent end to end with a real nginx: issue → deploy → reload → the new certificate
is served over TLS; a broken reload rolls back to the previous certificate (still served) and
reports failed; "issued but not deployed" is retried from disk once nginx is fixed."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cptest.apiclient import ApiClient
from cptest.databases import database_url
from cptest.nginx import Nginx
from cptest.server import ServerThread, make_config, provision
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certplane.agent.config import load_config
from certplane.agent.engine import Agent
from certplane.agent.state import Status
from certplane.agent.verify import Endpoint, fingerprint_of, served_certificate

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="module"),
]
NAME = "www.shop.localhost"


def _placeholder(cert: Path, key: Path) -> None:
    """What an operator has before the agent: a self-signed certificate nginx can start with."""
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)


@pytest.fixture(scope="module")
def site(backend, tmp_path_factory, http01_port) -> Iterator[dict]:
    directory = tmp_path_factory.mktemp(f"agent-e2e-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port)
        platform = provision(config, {"shop": True})
        server = ServerThread(config).start()
        ssl_dir = directory / "etc" / "ssl"
        ssl_dir.mkdir(parents=True)
        cert, key = ssl_dir / "fullchain.pem", ssl_dir / "key.pem"
        _placeholder(cert, key)
        try:
            with Nginx(directory / "nginx", cert=cert, key=key, server_name=NAME) as nginx:
                yield {
                    "server": server,
                    "nginx": nginx,
                    "directory": directory,
                    "eab": platform.eab["shop"],
                    "acme": platform.directory("shop"),
                    "cert": cert,
                    "key": key,
                    "http01_port": http01_port,
                }
        finally:
            server.stop()


class MovableClock:
    """The agent's clock: real time plus whatever the test moves it by."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta(0)

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + self.offset


def _agent(site: dict, clock: MovableClock | None = None) -> Agent:
    root: Path = site["directory"]
    eab_file = root / "eab.key"
    eab_file.write_text(site["eab"].hmac_key)
    os.chmod(eab_file, 0o600)
    state = root / "state"
    state.mkdir(exist_ok=True, mode=0o700)
    nginx: Nginx = site["nginx"]
    reload = ", ".join(f'"{part}"' for part in nginx.reload_argv)
    (root / "agent.toml").write_text(
        f"""
[server]
directory = "{site["acme"]}"
eab_kid = "{site["eab"].kid}"
eab_hmac_key_file = "{eab_file}"

[agent]
state_dir = "{state}"
roots = ["{root / "etc" / "ssl"}"]
report = false

[[certificate]]
name = "shop"
names = ["{NAME}"]
reload = [{reload}]
[certificate.challenge]
type = "http-01"
mode = "standalone"
address = "127.0.0.1"
port = {site["http01_port"]}
[certificate.deploy]
fullchain = "{site["cert"]}"
key = "{site["key"]}"
[[certificate.verify]]
host = "127.0.0.1"
port = {nginx.port}
sni = "{NAME}"
"""
    )
    return Agent(load_config(root / "agent.toml"), clock=clock)


def _served(site: dict) -> str | None:
    nginx: Nginx = site["nginx"]
    return served_certificate(Endpoint("127.0.0.1", nginx.port, NAME)).fingerprint


def test_issue_deploy_rollback_retry_and_ari_renewal(site):
    clock = MovableClock()
    agent = _agent(site, clock)
    placeholder = fingerprint_of(site["cert"].read_bytes())
    assert _served(site) == placeholder

    (step,) = agent.tick()  # nothing issued yet: issue now, deploy with proof
    assert step.ok, step
    first = fingerprint_of(site["cert"].read_bytes())
    assert first != placeholder and _served(site) == first
    assert oct(site["key"].stat().st_mode & 0o777) == "0o600"
    state = agent.states.load("shop")
    assert state.status is Status.DEPLOYED and state.certificate.fingerprint_sha256 == first
    (ask,) = agent.tick()  # then the CA's renewal window (RFC 9773)
    assert ask.action == "poll-ari" and ask.ok, ask
    assert agent.tick() == []  # nothing is due: the renewal time lies in the future

    site["nginx"].break_config()
    step = agent.issue(agent.config.certificates[0])  # a new certificate; nginx refuses reload
    assert not step.ok and "reload" in step.detail
    assert "previous certificate is served again" in step.detail
    assert fingerprint_of(site["cert"].read_bytes()) == first  # the files are the old ones
    assert _served(site) == first
    state = agent.states.load("shop")
    assert state.status is Status.ISSUED_NOT_DEPLOYED and state.failures == 1
    assert "reload" in (state.last_error or "")

    site["nginx"].write_config()  # the operator fixes nginx; the agent retries the deployment
    retried = agent.deploy(agent.config.certificates[0])
    assert retried.ok, retried
    second = fingerprint_of(site["cert"].read_bytes())
    assert second not in (first, placeholder) and _served(site) == second
    assert agent.states.load("shop").status is Status.DEPLOYED
    (ask,) = agent.tick()
    assert ask.action == "poll-ari" and ask.ok  # the new certificate's window, in the future

    # The CA revokes the deployed certificate: ARI moves its window into the past, and the
    # agent's next look at ARI (after the Retry-After it was given) renews and deploys at once.
    admin = ApiClient(
        site["server"].api_url, site["server"].token("ops", "tenant-admin", tenant="shop")
    )
    (deployed,) = [
        c
        for c in admin.get("/tenants/shop/certificates", params={"status": "issued"}).json()[
            "items"
        ]
        if c["serial"] == agent.states.load("shop").certificate.serial
    ]
    revoked = admin.post(f"/tenants/shop/certificates/{deployed['id']}/revoke", {"reason": 1})
    assert revoked.status_code == 200, revoked.text
    assert agent.tick() == []  # ARI is not asked before its Retry-After
    clock.offset = datetime.timedelta(hours=7)
    steps = agent.tick()
    assert [s.action for s in steps] == ["poll-ari"] and steps[0].ok
    (renewal,) = agent.tick()
    assert renewal.action == "renew" and renewal.ok, renewal
    third = fingerprint_of(site["cert"].read_bytes())
    assert third != second and _served(site) == third
    assert agent.states.load("shop").status is Status.DEPLOYED


def test_adopt_a_discovered_certificate_in_place(site, tmp_path, capsys):
    """``adopt``: discovery finds the file nginx serves, the agent takes it over (same names,
    same files) and proves the new certificate is served."""
    from certplane.agent.cli import main

    ssl_dir = tmp_path / "ssl"
    ssl_dir.mkdir()
    cert, key = ssl_dir / "legacy.pem", ssl_dir / "legacy.key"
    _placeholder(cert, key)
    with Nginx(tmp_path / "nginx", cert=cert, key=key, server_name=NAME) as nginx:
        eab = site["server"].call(lambda: site["server"].provisioner().create_eab("shop", "adopt"))
        eab_file = tmp_path / "eab.key"
        eab_file.write_text(eab.hmac_key)
        os.chmod(eab_file, 0o600)
        (tmp_path / "state").mkdir(mode=0o700)
        config = tmp_path / "agent.toml"
        config.write_text(
            f"""
[server]
directory = "{site["acme"]}"
eab_kid = "{eab.kid}"
eab_hmac_key_file = "{eab_file}"

[agent]
state_dir = "{tmp_path / "state"}"
roots = ["{ssl_dir}"]
report = false

[agent.discovery]
cert_paths = ["{ssl_dir}"]
nginx_conf = "{nginx.conf}"
"""
        )
        before = served_certificate(Endpoint("127.0.0.1", nginx.port, NAME)).fingerprint
        assert main(["--config", str(config), "--json", "discover"]) == 0
        report = json.loads(capsys.readouterr().out)
        (found,) = [c for c in report["certificates"] if c["certificate"]["fingerprint"] == before]
        assert found["configured"][0]["served"] is True

        reload = [f"--reload={part}" for part in nginx.reload_argv]  # "-p" is not an option
        argv = ["--config", str(config), "adopt", str(cert), "--name", "legacy"]
        argv += ["--standalone-port", str(site["http01_port"]), *reload]
        assert main(argv) == 0  # without --write: the entry it would add
        block = capsys.readouterr().out
        assert f'fullchain = "{cert}"' in block and f'key = "{key}"' in block
        assert f"port = {nginx.port}" in block

        assert main([*argv, "--write"]) == 0, capsys.readouterr()
        assert "legacy: issue ok" in capsys.readouterr().out
        after = served_certificate(Endpoint("127.0.0.1", nginx.port, NAME)).fingerprint
        assert after not in (None, before) and after == fingerprint_of(cert.read_bytes())
        assert 'name = "legacy"' in config.read_text()
