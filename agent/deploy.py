"""Deployment with proof: write the files, reload, and check that every verify endpoint serves
the new certificate; otherwise put the previous files back, reload again, check that the old
certificate is served again, and report ``failed`` with the reason.

A reload is an operator's argv (never a shell); its output is kept short in the report.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from certplane.agent.acme_flow import Issued
from certplane.agent.config import CertificateSettings, VerifyEndpoint
from certplane.agent.store import (
    DeployHandle,
    FileSpec,
    StoreError,
    commit,
    deploy,
    read_file,
    rollback,
)
from certplane.agent.verify import Endpoint, Served, fingerprint_of, served_certificate

RELOAD_TIMEOUT_SECONDS = 120
VERIFY_INTERVAL_SECONDS = 0.2
VERIFY_AGREEING_LOOKS = 3
Runner = Callable[[Sequence[str]], "CommandResult"]
Probe = Callable[[Endpoint], Served]


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


@dataclass(frozen=True)
class DeployOutcome:
    """``deployed`` when every endpoint serves the new certificate; otherwise ``failed`` with
    the reason, and whether the previous certificate is served again (``restored``)."""

    deployed: bool
    reason: str = ""
    restored: bool = False
    served: tuple[Served, ...] = field(default_factory=tuple)


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run an operator's command (argv, no shell); its exit code and the tail of its output."""
    try:
        done = subprocess.run(  # noqa: S603 (argv from the operator's configuration)
            list(argv),
            capture_output=True,
            timeout=RELOAD_TIMEOUT_SECONDS,
            check=False,
            shell=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(-1, f"{type(exc).__name__}: {exc}")
    output = (done.stdout + done.stderr).decode(errors="replace").strip()
    return CommandResult(done.returncode, output[-500:])


def files_of(
    settings: CertificateSettings, issued: Issued, key_pem: bytes
) -> dict[str | os.PathLike[str], FileSpec]:
    """The files of one certificate by their configured paths, with modes and owner."""
    deploy_to = settings.deploy
    content = {
        "cert": issued.cert_pem.encode(),
        "chain": issued.chain_pem.encode(),
        "fullchain": issued.fullchain_pem.encode(),
        "key": key_pem,
    }
    return {
        path: FileSpec(
            content[role],
            deploy_to.key_mode if role == "key" else deploy_to.mode,
            deploy_to.owner,
        )
        for role, path in deploy_to.files().items()
    }


def endpoints_of(settings: CertificateSettings) -> list[Endpoint]:
    return [_endpoint(v, settings.names[0]) for v in settings.verify]


def _endpoint(verify: VerifyEndpoint, first_name: str) -> Endpoint:
    return Endpoint(verify.host, verify.port, verify.sni or first_name.removeprefix("*."))


class Deployer:
    def __init__(
        self,
        roots: Sequence[Path],
        *,
        run: Runner = run_command,
        probe: Probe = served_certificate,
        verify_seconds: float = 15.0,
    ) -> None:
        self._roots = tuple(roots)
        self._run = run
        self._probe = probe
        self._verify_seconds = verify_seconds
        self._pause = threading.Event()  # never set: a wait that is only a pause

    def deploy(
        self, settings: CertificateSettings, issued: Issued, key_pem: bytes
    ) -> DeployOutcome:
        """Write, reload, prove; roll back on any failure (see the module docstring)."""
        try:
            previous = self._current_fingerprint(settings)
            handle = deploy(files_of(settings, issued, key_pem), roots=self._roots)
        except StoreError as exc:
            return DeployOutcome(False, f"writing the files failed: {exc}")
        new = fingerprint_of(issued.cert_pem.encode())
        problem = self._reload(settings) or self._prove(settings, new)
        if problem is None:
            commit(handle)
            return DeployOutcome(True, served=tuple(self._look(settings)))
        return self._roll_back(settings, handle, problem, previous)

    def _current_fingerprint(self, settings: CertificateSettings) -> str | None:
        """The certificate the files hold now (the one a rollback must bring back)."""
        target = settings.deploy.cert or settings.deploy.fullchain
        data = read_file(target, roots=self._roots) if target is not None else None
        return fingerprint_of(data) if data else None

    def _reload(self, settings: CertificateSettings) -> str | None:
        if not settings.reload:
            return None
        result = self._run(settings.reload)
        if result.returncode == 0:
            return None
        return f"reload {settings.reload[0]} exited {result.returncode}: {result.output}"

    def _look(self, settings: CertificateSettings) -> list[Served]:
        return [self._probe(endpoint) for endpoint in endpoints_of(settings)]

    def _prove(self, settings: CertificateSettings, fingerprint: str) -> str | None:
        """None once every endpoint serves ``fingerprint``; servers reload asynchronously
        (nginx answers "reload" before its new workers run), so look again until the deadline."""
        deadline = time.monotonic() + self._verify_seconds
        agreeing = 0
        while True:
            problem = self._mismatch(self._look(settings), fingerprint)
            agreeing = agreeing + 1 if problem is None else 0
            # Old workers of a gracefully reloading server may still answer for a moment:
            # only several agreeing looks in a row are proof.
            if agreeing >= VERIFY_AGREEING_LOOKS:
                return None
            if time.monotonic() >= deadline:
                return problem or "the served certificate did not stay the new one"
            self._pause.wait(VERIFY_INTERVAL_SECONDS)

    @staticmethod
    def _mismatch(served: list[Served], fingerprint: str) -> str | None:
        for seen in served:
            if seen.fingerprint != fingerprint:
                what = seen.error or f"a different certificate ({seen.fingerprint})"
                at = seen.endpoint
                return (
                    f"{at.host}:{at.port} (SNI {at.sni}) does not serve the new certificate: {what}"
                )
        return None

    def _roll_back(
        self,
        settings: CertificateSettings,
        handle: DeployHandle,
        problem: str,
        previous: str | None,
    ) -> DeployOutcome:
        """Previous files back, reload, and check what is served now."""
        try:
            rollback(handle)
        except StoreError as exc:
            return DeployOutcome(False, f"{problem}; rollback failed: {exc}")
        reload_problem = self._reload(settings)
        # A failed reload usually means the server kept its old configuration, and with it the
        # previous certificate: what counts is what the endpoints serve.
        restored = previous is not None and self._prove(settings, previous) is None
        served = tuple(self._look(settings))
        reason = (
            problem
            if reload_problem is None
            else f"{problem}; after the rollback: {reload_problem}"
        )
        return DeployOutcome(False, reason, restored, served)
