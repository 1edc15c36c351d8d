"""certbot against a conformance target: homes, challenge flags, and the exchange baseline."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import josepy as jose
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cptest.certbot_cli import (
    HOOK_RECORD_ENV,
    MANAGEMENT_URL_ENV,
    CertbotHome,
    CertbotRun,
    Lineage,
    hook_calls,
    write_dns_hooks,
)
from cptest.conf_acme import REGISTERED, need_lab
from cptest.conf_target import Target
from cptest.jwsclient import ERR, PrivateKey

STANDALONE_IP = "127.0.0.2"


@dataclass
class CertbotLab:
    """certbot homes for one target, with what http-01 and dns-01 need from the lab."""

    target: Target
    root: Path

    @classmethod
    def for_target(cls, target: Target, root: Path) -> CertbotLab:
        need_lab(target)
        return cls(target, root)

    def env(self) -> dict[str, str]:
        assert self.target.lab is not None
        env = {
            MANAGEMENT_URL_ENV: self.target.lab.management_url,
            HOOK_RECORD_ENV: str(self.root / "hooks.jsonl"),
        }
        if isinstance(self.target.verify, str):
            env["REQUESTS_CA_BUNDLE"] = self.target.verify
        return env

    def home(self, directory: str | None = None, root: Path | None = None) -> CertbotHome:
        return CertbotHome(
            root or self.root / "home", directory or self.target.directory, self.env()
        )

    def directory(self, url: str | None = None) -> dict[str, Any]:
        session = self.target.session()
        return dict(session.get(url or self.target.directory, timeout=10).json())

    def standalone_name(self) -> str:
        """A fresh name the lab resolves to the address certbot's standalone server binds."""
        assert self.target.lab is not None
        name = f"sa-{secrets.token_hex(4)}.conf.example.com"
        self.target.lab.add_a(name, [STANDALONE_IP])
        return name

    def standalone_flags(self) -> tuple[str, ...]:
        assert self.target.http01 is not None
        port = str(self.target.http01.port)
        return ("--standalone", "--http-01-address", STANDALONE_IP, "--http-01-port", port)

    def standalone(self, name: str) -> tuple[str, ...]:
        return ("certonly", *self.standalone_flags(), "-d", name)

    def manual_dns(self) -> tuple[str, ...]:
        auth, cleanup = write_dns_hooks(self.root / "hooks")
        return (
            "certonly", "--manual", "--preferred-challenges", "dns",
            "--manual-auth-hook", auth, "--manual-cleanup-hook", cleanup,
        )  # fmt: skip

    def hook_calls(self) -> list[tuple[str, str, str]]:
        return hook_calls(self.root / "hooks.jsonl")


def check_exchanges(run: CertbotRun) -> None:
    """The suite's baseline (RFC 8555 §6.5, §6.7) on every exchange certbot logged."""
    assert run.exchanges(), f"certbot logged no ACME exchange\n{run.output}"
    for exchange in run.exchanges():
        where = f"{exchange.method} {exchange.url} -> {exchange.status}"
        assert exchange.status < 500, f"{where}\n{exchange.body[:1000]}"
        if exchange.method == "POST":
            assert exchange.headers.get("replay-nonce"), f"{where}: no Replay-Nonce"
        if exchange.status >= 400:
            ctype = exchange.headers.get("content-type", "")
            assert ctype.startswith("application/problem+json"), f"{where}: {ctype!r}"
            doc = exchange.json()
            assert doc["type"].removeprefix(ERR) in REGISTERED, f"{where}: {doc}"
            assert doc.get("status", exchange.status) == exchange.status, f"{where}: {doc}"


def assert_issued_by_chain(lineage: Lineage) -> None:
    """The leaf is signed by the first certificate of certbot's chain.pem, which names it."""
    issuer = lineage.chain[0]
    assert lineage.cert.issuer == issuer.subject
    lineage.cert.verify_directly_issued_by(issuer)
    assert lineage.fullchain[0] == lineage.cert


def revoke_again_problem(home: CertbotHome, cert_path: Path) -> str:
    """Revoke ``cert_path`` once more as ``home``'s account; the problem type answered."""
    run = home.run("revoke", "--cert-path", str(cert_path), "--no-delete-after-revoke", check=False)
    assert run.returncode != 0, run.output
    return run.problem_types()[-1].removeprefix(ERR)


def account_key(home: CertbotHome) -> PrivateKey:
    """The account key certbot stored for ``home``'s one account."""
    (account_dir,) = home.account_dirs()
    jwk = jose.JWK.json_loads((account_dir / "private_key.json").read_text())
    key = jwk.key._wrapped  # josepy wraps the cryptography key
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key
