"""Deployment with proof, with the reload and the endpoint injected: a reload that succeeds but
an endpoint that keeps serving something else is rolled back too, and the previous files come
back byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from unit.agent.fixtures.discovery.pki import TestPKI

from certplane.agent.acme_flow import Issued
from certplane.agent.config import (
    CertificateSettings,
    DeploySettings,
    Http01Standalone,
    VerifyEndpoint,
)
from certplane.agent.deploy import CommandResult, Deployer
from certplane.agent.verify import Endpoint, Served, fingerprint_of


def self_signed_pem(name: str) -> str:
    pki = TestPKI(datetime.now(UTC))
    return pki.leaf(name, dns=[name], self_signed=True).pem.decode()


def _settings(root: Path) -> CertificateSettings:
    return CertificateSettings(
        name="site",
        names=("www.example.test",),
        challenge=Http01Standalone(),
        deploy=DeploySettings(key=root / "key.pem", fullchain=root / "full.pem"),
        reload=("reload-it",),
        verify=(VerifyEndpoint("127.0.0.1", 8443, "www.example.test"),),
    )


def _issued(pem: str) -> Issued:
    return Issued(pem, "", pem)


def test_an_endpoint_that_does_not_serve_the_new_certificate_is_rolled_back(tmp_path):
    old, new = self_signed_pem("old.example.test"), self_signed_pem("new.example.test")
    (tmp_path / "full.pem").write_text(old)
    (tmp_path / "key.pem").write_bytes(b"old key")
    (tmp_path / "key.pem").chmod(0o600)
    reloads: list[tuple[str, ...]] = []

    def run(argv):
        reloads.append(tuple(argv))
        return CommandResult(0, "")

    def probe(endpoint: Endpoint) -> Served:  # the server keeps presenting the old one
        return Served(endpoint, fingerprint_of(old.encode()))

    deployer = Deployer([tmp_path], run=run, probe=probe, verify_seconds=0.3)
    outcome = deployer.deploy(_settings(tmp_path), _issued(new), b"new key")
    assert not outcome.deployed and outcome.restored
    assert "does not serve the new certificate" in outcome.reason
    assert (tmp_path / "full.pem").read_text() == old
    assert (tmp_path / "key.pem").read_bytes() == b"old key"
    assert reloads == [("reload-it",), ("reload-it",)]  # after writing, and after the rollback


def test_a_proven_deployment_keeps_the_new_files(tmp_path):
    old, new = self_signed_pem("old.example.test"), self_signed_pem("new.example.test")
    (tmp_path / "full.pem").write_text(old)
    deployer = Deployer(
        [tmp_path],
        run=lambda argv: CommandResult(0, ""),
        probe=lambda endpoint: Served(endpoint, fingerprint_of(new.encode())),
    )
    outcome = deployer.deploy(_settings(tmp_path), _issued(new), b"new key")
    assert outcome.deployed
    assert (tmp_path / "full.pem").read_text() == new
    assert oct((tmp_path / "key.pem").stat().st_mode & 0o777) == "0o600"


def test_an_unreachable_endpoint_is_not_proof(tmp_path):
    new = self_signed_pem("new.example.test")
    deployer = Deployer(
        [tmp_path],
        run=lambda argv: CommandResult(0, ""),
        probe=lambda endpoint: Served(endpoint, None, "ConnectionRefusedError: refused"),
        verify_seconds=0.2,
    )
    outcome = deployer.deploy(_settings(tmp_path), _issued(new), b"k")
    assert not outcome.deployed and not outcome.restored  # nothing was there before
    assert "refused" in outcome.reason
    assert not (tmp_path / "full.pem").exists()  # files that did not exist are removed again
