"""The ``certplane`` command, run as a user would: human output, --json, errors, exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cptest.databases import database_url

from certplane.server.storage.migrate import head_revision

CLI = str(Path(sys.executable).parent / "certplane")


@pytest.fixture
def cli(backend, tmp_path):
    with _cli(backend, tmp_path) as run:
        yield run


@pytest.fixture
def sqlite_cli(tmp_path):
    """The error paths do not depend on the database backend."""
    with _cli("sqlite", tmp_path) as run:
        yield run


@contextlib.contextmanager
def _cli(backend, tmp_path):
    config = tmp_path / "certplane.toml"
    with database_url(backend, tmp_path) as url:
        config.write_text(
            f'data_dir = "{tmp_path}"\n[database]\nurl = "{url}"\n'
            '[server]\nbase_url = "https://acme.example.test"\n'
        )

        def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CERTPLANE_")}
            result = subprocess.run(
                [CLI, "--config", str(config), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            if check:
                assert result.returncode == 0, result.stderr
            return result

        yield run


def test_setup_tenants_and_eab_keys(cli, tmp_path):
    assert f"revision {head_revision()}" in cli("db", "upgrade").stdout
    init = json.loads(cli("--json", "ca", "init").stdout)
    assert init["master_key_created"] is True
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert Path(init["root_certificate"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    again = json.loads(cli("--json", "ca", "init").stdout)
    assert again["master_key_created"] is False and again["root_subject"] == init["root_subject"]

    created = json.loads(cli("--json", "tenant", "create", "acme-corp", "--name", "ACME").stdout)
    assert created["directory"] == "https://acme.example.test/acme/acme-corp/directory"
    assert created["external_account_required"] is True
    assert "acme-corp" in cli("tenant", "list").stdout
    assert json.loads(cli("--json", "tenant", "show", "acme-corp").stdout)["name"] == "ACME"
    assert "suspended" in cli("tenant", "suspend", "acme-corp").stdout
    assert json.loads(cli("--json", "tenant", "activate", "acme-corp").stdout)["status"] == "active"

    key = json.loads(cli("--json", "eab", "create", "acme-corp", "--label", "fleet").stdout)
    assert len(key["hmac_key"]) == 43 and key["kid"]
    listed = json.loads(cli("--json", "eab", "list", "acme-corp").stdout)
    assert [(k["kid"], k["status"], k["label"]) for k in listed] == [
        (key["kid"], "unbound", "fleet")
    ]
    assert key["hmac_key"] not in cli("eab", "list", "acme-corp").stdout
    assert "revoked" in cli("eab", "revoke", "acme-corp", key["kid"]).stdout
    twice = cli("eab", "revoke", "acme-corp", key["kid"], check=False)
    assert twice.returncode == 1 and "is revoked" in twice.stderr


ERRORS = [
    (("tenant", "create", "Bad_Slug"), "expected 1-63 lowercase letters"),
    (("tenant", "create", "t1"), "already exists"),
    (("tenant", "show", "nobody"), "tenant 'nobody' does not exist"),
    (("eab", "create", "nobody"), "tenant 'nobody' does not exist"),
    (("eab", "revoke", "t1", "missing"), "does not exist"),
]


def test_errors_are_clear_and_non_zero(sqlite_cli):
    cli = sqlite_cli
    result = cli("tenant", "list", check=False)
    assert result.returncode == 1 and "certplane db upgrade" in result.stderr
    cli("db", "upgrade")
    result = cli("tenant", "create", "t1", check=False)
    assert result.returncode == 1 and "certplane ca init" in result.stderr
    cli("ca", "init")
    cli("tenant", "create", "t1")
    for args, message in ERRORS:
        result = cli(*args, check=False)
        assert result.returncode == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_bad_configuration_names_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nlisten_port = 'x'\n")
    result = subprocess.run(
        [CLI, "--config", str(config), "tenant", "list"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "server.listen_port: expected int" in result.stderr


def test_tenant_cas_from_the_command_line(sqlite_cli, tmp_path):
    """ca create / list / rotate / export-csr / import, as an operator scripts them."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    from certplane.ca.hierarchy import create_intermediate, create_root

    cli = sqlite_cli
    cli("db", "upgrade")
    cli("ca", "init")
    cli("tenant", "create", "shop", "--permit-dns", "shop.example", "--dedicated-root")
    rsa = json.loads(cli("--json", "ca", "create", "shop", "--algorithm", "rsa-2048").stdout)
    assert rsa["status"] == "active" and rsa["algorithm"] == "rsa-2048"
    listed = json.loads(cli("--json", "ca", "list", "shop").stdout)
    assert sorted(r["status"] for r in listed) == ["active", "active", "root"]
    assert {r["pattern"] for r in listed} == {"dedicated-root", "platform-root"}
    rotated = json.loads(cli("--json", "ca", "rotate", "shop", rsa["id"]).stdout)
    assert rotated["replaces"] == rsa["id"] and rotated["algorithm"] == "rsa-2048"
    assert rsa["id"] in cli("ca", "list", "shop").stdout  # still listed, now retired

    csr_path = tmp_path / "shop.csr"
    pending = json.loads(cli("--json", "ca", "export-csr", "shop", "--out", str(csr_path)).stdout)
    assert pending["status"] == "pending"
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = create_root(root_key, "Shop Root", "Shop", timedelta(days=365))
    signed = create_intermediate(root, root_key, csr.public_key(), "Shop CA", "Shop",
                                 timedelta(days=90))  # fmt: skip
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    (tmp_path / "int.pem").write_bytes(signed.public_bytes(Encoding.PEM))
    wrong = cli("ca", "import", "shop", pending["id"], "--cert", str(tmp_path / "root.pem"),
                "--root", str(tmp_path / "root.pem"), check=False)  # fmt: skip
    assert wrong.returncode == 1 and "certificate refused" in wrong.stderr
    imported = json.loads(
        cli(
            "--json",
            "ca",
            "import",
            "shop",
            pending["id"],
            "--cert",
            str(tmp_path / "int.pem"),
            "--root",
            str(tmp_path / "root.pem"),
        ).stdout
    )
    assert imported["status"] == "active" and imported["pattern"] == "customer-root"
    delegated = json.loads(cli("--json", "ca", "ocsp-responder", "shop", imported["id"]).stdout)
    assert delegated["ocsp_responder_until"]
    removed = cli("--json", "ca", "ocsp-responder", "shop", imported["id"], "--remove").stdout
    assert json.loads(removed)["ocsp_responder_until"] is None
    settings = json.loads(cli("--json", "tenant", "set", "shop", "--aia-ocsp", "off").stdout)
    assert settings["aia_ocsp"] is False and settings["aia_ca_issuers"] is True
    limited = cli("--json", "tenant", "set", "shop", "--limit", "certificates-per-tenant=100/1d",
                  "--limit", "new-orders-per-account=off").stdout  # fmt: skip
    assert json.loads(limited)["limit_overrides"] == {
        "certificates-per-tenant": "100/1d",
        "new-orders-per-account": "",
    }
    reset = cli("--json", "tenant", "set", "shop", "--limit", "new-orders-per-account=default")
    assert json.loads(reset.stdout)["limit_overrides"] == {"certificates-per-tenant": "100/1d"}
    bad = cli("tenant", "set", "shop", "--limit", "bogus=1/1h", check=False)
    assert bad.returncode == 1 and "unknown limit 'bogus'" in bad.stderr
    unknown = cli("ca", "create", "shop", "--algorithm", "dsa-1024", check=False)
    assert unknown.returncode == 1 and "unknown key algorithm" in unknown.stderr
