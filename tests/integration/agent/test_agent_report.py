"""The engine's report hook against a real certplane: each issuance, renewal, deployment and
failure becomes a lifecycle event on the certificate, with the host's snapshot beside it; a
report that cannot be sent never fails the deployment and goes with the next pass."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cptest.agentconf import write_agent_config
from cptest.apiclient import ApiClient
from cptest.net import free_port
from josepy.jwk import JWK

from certplane.agent.acme_flow import AcmeSession
from certplane.agent.config import AgentConfig, load_config
from certplane.agent.engine import Agent
from certplane.agent.report import QUEUE_FILE, host_name
from certplane.agent.state import Status


def _config(tmp_path: Path, certplane, http01_port: int, *, report: bool = True) -> AgentConfig:
    server, info = certplane
    # The reload is a real command; it fails while the file "broken" exists.
    broken = str(tmp_path / "broken")
    reload = [sys.executable, "-c", f"import os, sys; sys.exit(3 * os.path.exists({broken!r}))"]
    certificate = f"""
[[certificate]]
name = "web"
names = ["web.fleet.localhost"]
reload = {json.dumps(reload)}
[certificate.challenge]
type = "http-01"
mode = "standalone"
address = "127.0.0.1"
port = {http01_port}
[certificate.deploy]
fullchain = "{{roots}}/web.pem"
key = "{{roots}}/web.key"
"""
    path = write_agent_config(
        tmp_path, server, tenant="fleet", directory=info["directory"], certificate=certificate,
        report=report,
    )  # fmt: skip
    return load_config(path)


def _admin(certplane) -> ApiClient:
    server, _ = certplane
    return ApiClient(server.api_url, server.token("ops", "tenant-admin", tenant="fleet"))


def _account_id(agent: Agent) -> str:
    record = json.loads((agent.config.agent.state_dir / "account.json").read_text())
    return str(record["account"]).rsplit("/", 1)[1]


def _snapshot(admin: ApiClient, agent: Agent) -> list[dict[str, Any]]:
    """The agent's entries in the inventory (its account's, on this host)."""
    params = {"host": host_name(), "limit": "200"}
    items = admin.get("/tenants/fleet/inventory", params=params).json()["items"]
    return [i for i in items if i["account_id"] == _account_id(agent)]


def _certificate_id(admin: ApiClient, serial: str) -> str:
    found = admin.get("/tenants/fleet/certificates", params={"limit": "200"}).json()["items"]
    (cert,) = [c for c in found if c["serial"] == serial]
    return str(cert["id"])


def _agent_events(admin: ApiClient, cert_id: str) -> list[tuple[str, str]]:
    params = {"object_type": "certificate", "object_id": cert_id, "limit": "200"}
    events = admin.get("/tenants/fleet/events", params=params).json()["items"]
    return sorted((e["type"], e["data"]["name"]) for e in events if e["actor"].startswith("acc"))


def _queued(agent: Agent) -> list[dict[str, Any]]:
    path = agent.config.agent.state_dir / QUEUE_FILE
    return json.loads(path.read_text()) if path.exists() else []


def test_deployed_renewed_and_failed_reach_the_server(certplane, http01_port, tmp_path):
    admin = _admin(certplane)
    agent = Agent(_config(tmp_path, certplane, http01_port))
    settings = agent.config.certificates[0]

    (step,) = agent.tick()  # issue, deploy, then report at the end of the pass
    assert step.ok, step
    first = agent.states.load("web").certificate
    first_id = _certificate_id(admin, first.serial)
    assert _agent_events(admin, first_id) == [("certificate.deployed", "web")]
    (entry,) = _snapshot(admin, agent)
    assert entry["fingerprint"] == first.fingerprint_sha256
    assert entry["certificate_id"] == first_id and entry["managed"] is True
    assert entry["locations"] == [
        {"kind": "file", "path": str(settings.deploy.fullchain), "index": 0, "served": False}
    ]
    assert entry["flags"] == [] and _queued(agent) == []

    renewed = agent.issue(settings, replaces=first.ari_cert_id)
    assert renewed.ok, renewed
    assert agent.send_report()
    second = agent.states.load("web").certificate
    second_id = _certificate_id(admin, second.serial)
    assert _agent_events(admin, second_id) == [
        ("certificate.deployed", "web"), ("certificate.renewed", "web"),
    ]  # fmt: skip
    assert [e["certificate_id"] for e in _snapshot(admin, agent)] == [second_id]

    (tmp_path / "broken").touch()
    failed = agent.issue(settings)
    assert not failed.ok and "reload" in failed.detail
    assert agent.send_report()
    state = agent.states.load("web")
    assert state.status is Status.ISSUED_NOT_DEPLOYED
    third_id = _certificate_id(admin, state.certificate.serial)
    assert _agent_events(admin, third_id) == [("agent.failed", "web")]
    # the files were rolled back: the host still holds the second certificate
    assert [e["certificate_id"] for e in _snapshot(admin, agent)] == [second_id]


class UnreachableInventory(AcmeSession):
    """A session whose inventory URL is a port nobody listens on, while ``broken`` is set."""

    broken = True
    closed_port = free_port()

    @property
    def inventory_url(self) -> str | None:
        if self.broken:
            return f"http://127.0.0.1:{self.closed_port}/acme/fleet/inventory"
        return super().inventory_url


def test_a_failed_report_never_fails_the_deployment_and_is_sent_next_pass(
    certplane, http01_port, tmp_path
):
    admin = _admin(certplane)
    config = _config(tmp_path, certplane, http01_port)
    directory = certplane[1]["directory"]

    def unreachable(key: JWK) -> AcmeSession:
        return UnreachableInventory(directory, key, None)

    agent = Agent(config, session_factory=unreachable)
    (step,) = agent.tick()
    assert step.ok and step.detail == "deployed and verified"
    assert agent.states.load("web").status is Status.DEPLOYED
    assert [e["type"] for e in _queued(agent)] == ["deployed"]  # kept for the next pass
    assert not agent.send_report()
    assert oct((config.agent.state_dir / QUEUE_FILE).stat().st_mode & 0o777) == "0o600"

    restarted = Agent(config)  # the queue is on disk: a restart sends it
    steps = restarted.tick()  # the next pass: ARI is asked, and the report goes out
    assert [s.action for s in steps] == ["poll-ari"] and _queued(restarted) == []
    cert_id = _certificate_id(admin, restarted.states.load("web").certificate.serial)
    assert _agent_events(admin, cert_id) == [("certificate.deployed", "web")]
    assert len(_snapshot(admin, restarted)) == 1


def test_nothing_is_reported_when_reporting_is_off(certplane, http01_port, tmp_path):
    admin = _admin(certplane)
    agent = Agent(_config(tmp_path, certplane, http01_port, report=False))
    heard: list[str] = []
    agent_with_hook = Agent(agent.config, report=lambda event, *_: heard.append(event))
    (step,) = agent_with_hook.tick()
    assert step.ok and heard == ["issued", "deployed"]
    assert not agent.send_report()
    assert _snapshot(admin, agent) == [] and _queued(agent) == []
    cert_id = _certificate_id(admin, agent.states.load("web").certificate.serial)
    assert _agent_events(admin, cert_id) == []


@pytest.mark.parametrize("event", ["issued", "something-else"])
def test_only_deployed_renewed_and_failed_are_queued(certplane, http01_port, tmp_path, event):
    agent = Agent(_config(tmp_path, certplane, http01_port))
    settings = agent.config.certificates[0]
    agent._report(event, settings, agent.states.load("web"), "")
    assert _queued(agent) == []
    agent._report("failed", settings, agent.states.load("web"), "x" * 5000)
    (queued,) = _queued(agent)
    assert queued["certificate"] is None and len(queued["detail"]) == 2048


def test_discovered_certificates_are_reported_unmanaged(tmp_path, certplane, http01_port):
    """What discovery finds on the host (here a file nobody manages) reaches the tenant's
    inventory as unmanaged, from an unknown issuer, with where it was found."""
    from datetime import UTC, datetime

    from unit.agent.fixtures.discovery.pki import TestPKI

    from certplane.agent.discovery import DiscoveryOptions, discover
    from certplane.agent.report import discovered_items

    found = tmp_path / "found"
    leaf = TestPKI(datetime.now(UTC)).leaf("old.example.test", dns=["old.example.test"])
    leaf.write(found / "old.pem")
    config = _config(tmp_path, certplane, http01_port)
    options = DiscoveryOptions(
        certificate_paths=(str(found),), nginx_main=None, apache_main=None, proc_root=None
    )
    agent = Agent(config, discovered=lambda: discovered_items(discover(options, probe=None)))
    assert all(step.ok for step in agent.tick())
    server, _ = certplane
    auditor = ApiClient(server.api_url, server.token("inv-aud", "auditor", tenant="fleet"))
    listed = auditor.get(
        "/tenants/fleet/inventory", params={"flag": "unmanaged", "host": host_name()}
    ).json()["items"]
    (item,) = [i for i in listed if i["fingerprint"] == leaf.fingerprint]
    assert "unknown-issuer" in item["flags"] and not item["managed"]
    assert item["locations"] == [
        {"kind": "file", "path": str(found / "old.pem"), "index": 0, "served": False}
    ]
