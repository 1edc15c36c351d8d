"""``certplane-agent`` from the command line against a real certplane: check-config explains
every problem, enroll, issue (files written, key 0600), status, renew (what is due, or --force
with ``replaces``), and clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cptest.agentconf import write_agent_config
from cryptography import x509

from certplane.agent.cli import main


def _write_config(tmp_path: Path, certplane, http01_port: int, *, extra: str = "") -> Path:
    server, info = certplane
    certificate = f"""
[[certificate]]
name = "api"
names = ["api.fleet.localhost"]
{extra}
[certificate.challenge]
type = "http-01"
mode = "standalone"
address = "127.0.0.1"
port = {http01_port}
[certificate.deploy]
cert = "{{roots}}/api.pem"
fullchain = "{{roots}}/api-full.pem"
key = "{{roots}}/api.key"
"""
    return write_agent_config(
        tmp_path, server, tenant="fleet", directory=info["directory"], certificate=certificate
    )


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_check_config_explains_each_problem(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(
        """
[server]
directory = "http://acme.example.com/directory"
[agent]
state_dir = "relative/state"
roots = []
[[certificate]]
name = "x"
names = ["bad_name"]
reload = "systemctl reload nginx"
[certificate.challenge]
type = "http-01"
mode = "standalone"
[certificate.deploy]
key = "/tmp/x.key"
"""
    )
    status, out, err = _run(capsys, "--config", str(config), "check-config")
    assert status == 1 and out == ""
    for key in (
        "server.directory",
        "agent.state_dir",
        "certificate[0].names[0]",
        "certificate[0].reload",
    ):
        assert key in err, err
    assert "shell" in err or "list" in err  # a reload given as one string is refused


def test_enroll_issue_status_renew(tmp_path, capsys, certplane, http01_port):
    config = str(_write_config(tmp_path, certplane, http01_port))
    status, out, _ = _run(capsys, "--config", config, "check-config")
    assert status == 0 and "api" in out
    status, out, _ = _run(capsys, "--config", config, "--json", "enroll")
    account = json.loads(out)["account"]
    assert status == 0 and "/acme/fleet/acct/" in account
    assert json.loads(_run(capsys, "--config", config, "--json", "enroll")[1])["account"] == account

    status, out, err = _run(capsys, "--config", config, "issue")
    assert status == 0, err
    assert "api: issue ok" in out
    key = tmp_path / "ssl" / "api.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    leaf = x509.load_pem_x509_certificate((tmp_path / "ssl" / "api.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.fleet.localhost"]

    status, out, _ = _run(capsys, "--config", config, "--json", "status")
    (row,) = json.loads(out)["managed"]
    assert row["status"] == "deployed" and row["next"] == "poll-ari"

    status, out, _ = _run(capsys, "--config", config, "--json", "renew")
    assert status == 0 and [s["action"] for s in json.loads(out)] == ["poll-ari"]
    status, out, _ = _run(capsys, "--config", config, "--json", "renew", "--force")
    (renewed,) = json.loads(out)
    assert status == 0 and renewed["action"] == "renew" and renewed["ok"], renewed
    again = x509.load_pem_x509_certificate((tmp_path / "ssl" / "api.pem").read_bytes())
    assert again.serial_number != leaf.serial_number


def test_unknown_names_and_a_failing_issue(tmp_path, capsys, certplane, http01_port):
    config = str(_write_config(tmp_path, certplane, http01_port))
    status, _, err = _run(capsys, "--config", config, "issue", "nope")
    assert status == 1 and "no managed certificate named nope" in err
    refused = tmp_path / "refused.toml"  # a name the CA refuses: the step fails, exit 1
    refused.write_text(Path(config).read_text().replace("api.fleet.localhost", "api.invalid"))
    status, out, _ = _run(capsys, "--config", str(refused), "issue")
    assert status == 1 and "api: issue FAILED" in out
    (row,) = json.loads(_run(capsys, "--config", str(refused), "--json", "status")[1])["managed"]
    assert row["status"] == "failed" and row["last_error"]


@pytest.mark.parametrize("command", ["status", "enroll"])
def test_a_missing_configuration_is_explained(tmp_path, capsys, command):
    status, _, err = _run(capsys, "--config", str(tmp_path / "none.toml"), command)
    assert status == 1 and "none.toml" in err


def test_the_daemon_passes_until_stopped(tmp_path, certplane, http01_port):
    import threading

    from certplane.agent.config import load_config
    from certplane.agent.engine import Agent

    config = load_config(_write_config(tmp_path, certplane, http01_port))
    stop = threading.Event()
    seen: list[str] = []

    def report(event, settings, state, detail):
        seen.append(event)
        if event == "deployed":
            stop.set()  # the operator's SIGTERM, once the first pass has done its work

    Agent(config, report=report).run(stop)
    assert seen == ["issued", "deployed"]


def test_status_lists_unmanaged_certificates_found_on_the_host(
    tmp_path, capsys, certplane, http01_port
):
    from datetime import UTC, datetime

    from unit.agent.fixtures.discovery.pki import TestPKI

    found = tmp_path / "found"
    leaf = TestPKI(datetime.now(UTC)).leaf("legacy.example.test", dns=["legacy.example.test"])
    leaf.write(found / "legacy.pem")
    config = _write_config(tmp_path, certplane, http01_port)
    discovery = f'[agent.discovery]\ncert_paths = ["{found}"]\nnginx_conf = "{tmp_path}/none"\n'
    config.write_text(config.read_text() + "\n" + discovery)
    status, out, err = _run(capsys, "--config", str(config), "--json", "status")
    assert status == 0, err
    shown = json.loads(out)
    assert shown["managed"][0]["status"] == "pending"
    assert [d["names"] for d in shown["discovered"]] == [["legacy.example.test"]]
    assert shown["discovered"][0]["files"] == [str(found / "legacy.pem")]
