"""The agent's work for each managed certificate: issue, deploy with proof, ask ARI, renew.

State lives in ``agent.state_dir``: the account key (0600) and URL, each certificate's state
file, and the last issued certificate and key (0600), kept until deployed so that "issued but
not deployed" is retried from disk without a new order. Every step is decided by the scheduler
(``scheduler.py``) and persisted before the next one.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWK, JWKEC

from certplane.agent import solvers as solving
from certplane.agent.acme_flow import AcmeFailure, AcmeSession, Issued, Solver, split_chain
from certplane.agent.config import (
    AgentConfig,
    CertificateSettings,
    Challenge,
    Dns01Hook,
    Dns01Rfc2136,
    Http01Standalone,
    Http01Webroot,
    TlsAlpn01Standalone,
)
from certplane.agent.deploy import Deployer, DeployOutcome
from certplane.agent.keys import csr_pem, generate_key, key_pem, load_key
from certplane.agent.report import InventoryReporter, ReportQueue, managed_items, merge_items
from certplane.agent.scheduler import Action, Clock, Scheduler, SystemClock
from certplane.agent.state import CertState, StateStore, Window, describe_certificate
from certplane.agent.store import StoreError, read_file, write_atomic

log = logging.getLogger(__name__)

SessionFactory = Callable[[JWK], AcmeSession]
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 (a standalone http-01 listener answers on every address)
# (event: issued, renewed, deployed or failed; the certificate's settings; its state after the
# event; a detail for failures)
Reporter = Callable[[str, CertificateSettings, CertState, str], None]
# Items of the inventory report besides the managed certificates (discovery's, as dicts)
ItemSource = Callable[[], Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class Step:
    """What one pass did for one certificate (for the log, ``status`` and reporting)."""

    name: str
    action: str
    ok: bool
    detail: str = ""


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        session_factory: SessionFactory | None = None,
        deployer: Deployer | None = None,
        report: Reporter | None = None,
        discovered: ItemSource | None = None,
    ) -> None:
        """``report`` hears of every lifecycle event; with ``agent.report`` set, the events
        are also reported to the server with the host's inventory (managed certificates, and
        ``discovered``'s items) at the end of each pass."""
        self.config = config
        self.clock = clock or SystemClock()
        self.scheduler = Scheduler(clock=self.clock, rng=rng or random.SystemRandom())
        self._state_dir = config.agent.state_dir
        self.states = StateStore(self._state_dir)
        self._deployer = deployer or Deployer(config.agent.roots)
        self._session_factory = session_factory or self._default_session
        self._session: AcmeSession | None = None
        self._inventory = (
            InventoryReporter(ReportQueue(self._state_dir), self.clock)
            if config.agent.report
            else None
        )
        self._discovered = discovered
        self._hooks = tuple(hook for hook in (report, self._inventory) if hook is not None)

    # --- account ----------------------------------------------------------------------------

    def _default_session(self, key: JWK) -> AcmeSession:
        server = self.config.server
        return AcmeSession(
            server.directory, key, str(server.ca_bundle) if server.ca_bundle else None
        )

    def account_key(self) -> JWK:
        """The account key, made on first use and kept 0600 in the state directory."""
        path = self._state_dir / "account-key.pem"
        pem = read_file(path, roots=[self._state_dir])
        if pem is None:
            pem = key_pem(ec.generate_private_key(ec.SECP256R1()))
            write_atomic(path, pem, mode=0o600, roots=[self._state_dir])
        return JWKEC(key=load_key(pem))

    def session(self) -> AcmeSession:
        """An ACME session with the account enrolled (EAB on first enrollment)."""
        if self._session is None:
            session = self._session_factory(self.account_key())
            server = self.config.server
            hmac_key = None
            if server.eab_hmac_key_file is not None:
                hmac_key = server.eab_hmac_key_file.read_text().strip()
            url = session.enroll(
                eab_kid=server.eab_kid, eab_hmac_key=hmac_key, contact=server.contact
            )
            record = json.dumps({"account": url, "directory": server.directory}).encode()
            write_atomic(
                self._state_dir / "account.json", record, mode=0o600, roots=[self._state_dir]
            )
            self._session = session
        return self._session

    def enroll(self) -> str:
        """The account URL (created with the EAB key on first use, found afterwards)."""
        self.session()
        record = read_file(self._state_dir / "account.json", roots=[self._state_dir])
        assert record is not None
        return str(json.loads(record)["account"])

    def renew_now(self, settings: CertificateSettings) -> Step:
        """Renew whatever the schedule says, naming the certificate replaced (RFC 9773 §5)."""
        state = self.states.load(settings.name)
        replaces = state.certificate.ari_cert_id if state.certificate else None
        return self.issue(settings, replaces=replaces)

    def status(self) -> list[dict[str, str | None]]:
        """One row per managed certificate: state, expiry, next action and when, last error."""
        rows = []
        for settings in self.config.certificates:
            state = self.states.load(settings.name)
            what, when = self.scheduler.next_action(state, renew_before=_renew_before(settings))
            cert = state.certificate
            rows.append(
                {
                    "name": settings.name,
                    "status": state.status.value,
                    "not_after": cert.not_after.isoformat() if cert else None,
                    "fingerprint": cert.fingerprint_sha256 if cert else None,
                    "next": what.value,
                    "when": when.isoformat(),
                    "last_error": state.last_error,
                }
            )
        return rows

    # --- one pass ---------------------------------------------------------------------------

    def tick(self) -> list[Step]:
        """Do what is due now for every managed certificate, then report (``agent.report``)."""
        steps = []
        for settings in self.config.certificates:
            state = self.states.load(settings.name)
            what, when = self.scheduler.next_action(state, renew_before=_renew_before(settings))
            if when <= self.clock.now():
                steps.append(self._do(settings, state, what))
        self.send_report()
        return steps

    def next_wakeup(self) -> datetime | None:
        times = [
            self.scheduler.next_action(self.states.load(s.name), renew_before=_renew_before(s)).when
            for s in self.config.certificates
        ]
        return min(times) if times else None

    def _do(self, settings: CertificateSettings, state: CertState, what: Action) -> Step:
        if what is Action.DEPLOY:
            return self.deploy(settings)
        if what is Action.POLL_ARI:
            return self.poll_ari(settings)
        replaces = (
            state.certificate.ari_cert_id if what is Action.RENEW and state.certificate else None
        )
        return self.issue(settings, replaces=replaces)

    # --- the actions ------------------------------------------------------------------------

    def issue(self, settings: CertificateSettings, *, replaces: str | None = None) -> Step:
        """A new key and certificate, kept on disk, then deployed with proof."""
        state = self.states.load(settings.name)
        action = "renew" if replaces else "issue"
        key = generate_key(settings.key_type)
        try:
            issued = self.session().issue(
                csr_pem(key, settings.names), self._solvers(settings.challenge), replaces=replaces
            )
        except (AcmeFailure, solving.SolverError, StoreError, OSError) as exc:
            self.states.save(self.scheduler.failed(state, f"{action}: {exc}"))
            self._report("failed", settings, self.states.load(settings.name), str(exc))
            return Step(settings.name, action, False, str(exc))
        self._keep(settings.name, issued, key_pem(key))
        certificate = describe_certificate(issued.cert_pem.encode())
        self.states.save(self.scheduler.issued(state, certificate))
        self._report(
            "renewed" if replaces else "issued", settings, self.states.load(settings.name), ""
        )
        return self.deploy(settings, action=action)

    def deploy(self, settings: CertificateSettings, *, action: str = "deploy") -> Step:
        """Deploy the kept certificate (retried while it is "issued but not deployed")."""
        state = self.states.load(settings.name)
        kept = self._kept(settings.name)
        if kept is None:
            self.states.save(self.scheduler.reissue(state))
            return Step(settings.name, action, False, "nothing issued is kept: issuing again")
        issued, key = kept
        outcome: DeployOutcome = self._deployer.deploy(settings, issued, key)
        if outcome.deployed:
            self.states.save(self.scheduler.deployed(state))
            self._report("deployed", settings, self.states.load(settings.name), "")
            return Step(settings.name, action, True, "deployed and verified")
        detail = outcome.reason + (
            " (the previous certificate is served again)" if outcome.restored else ""
        )
        self.states.save(self.scheduler.failed(state, f"deploy: {detail}"))
        self._report("failed", settings, self.states.load(settings.name), detail)
        return Step(settings.name, action, False, detail)

    def poll_ari(self, settings: CertificateSettings) -> Step:
        """Ask the CA for the certificate's renewal window (RFC 9773 §4.2)."""
        state = self.states.load(settings.name)
        kept = self._kept(settings.name)
        if kept is None or state.certificate is None:
            return Step(settings.name, "poll-ari", False, "no certificate to ask about")
        try:
            window = self.session().renewal_window(kept[0].cert_pem, self.clock.now())
        except AcmeFailure as exc:
            self.states.save(self.scheduler.ari_unavailable(state))
            return Step(settings.name, "poll-ari", False, str(exc))
        if window is None or window.end <= window.start:
            self.states.save(self.scheduler.ari_unavailable(state))
            return Step(settings.name, "poll-ari", False, "no usable renewal window")
        retry = window.ask_again_at - self.clock.now()
        self.states.save(
            self.scheduler.ari_fetched(state, Window(window.start, window.end), retry_after=retry)
        )
        return Step(settings.name, "poll-ari", True, f"window {window.start} .. {window.end}")

    # --- reporting -------------------------------------------------------------------------------

    def _report(
        self, event: str, settings: CertificateSettings, state: CertState, detail: str
    ) -> None:
        """Every hook hears of ``event``; a hook that fails is logged, never fails the step."""
        for hook in self._hooks:
            try:
                hook(event, settings, state, detail)
            except Exception:  # reporting must not undo a deployment
                log.exception("the report hook failed on %s %s", settings.name, event)

    def send_report(self) -> bool:
        """Report the host's inventory and the queued events to the server; True once it took
        them. Best effort: a failure is logged, and the events wait for the next pass."""
        if self._inventory is None:
            return False
        try:
            discovered = self._discovered() if self._discovered is not None else ()
            items = merge_items(managed_items(self.config, self.states), discovered)
            return self._inventory.flush(self.session(), items)
        except Exception as exc:  # the server, the network, the state directory: never fatal
            log.warning("inventory report failed (retried next pass): %s", exc)
            return False

    # --- the kept certificate -----------------------------------------------------------------

    def _kept_dir(self, name: str) -> Path:
        return self._state_dir / "certs" / name

    def _keep(self, name: str, issued: Issued, key: bytes) -> None:
        directory = self._kept_dir(name)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        roots = [self._state_dir]
        write_atomic(directory / "key.pem", key, mode=0o600, roots=roots)
        write_atomic(
            directory / "fullchain.pem", issued.fullchain_pem.encode(), mode=0o600, roots=roots
        )

    def _kept(self, name: str) -> tuple[Issued, bytes] | None:
        directory = self._kept_dir(name)
        roots = [self._state_dir]
        key = read_file(directory / "key.pem", roots=roots)
        fullchain = read_file(directory / "fullchain.pem", roots=roots)
        if key is None or fullchain is None:
            return None
        return split_chain(fullchain.decode()), key

    # --- solvers ------------------------------------------------------------------------------

    def _solvers(self, challenge: Challenge) -> dict[str, Solver]:
        roots = self.config.agent.roots
        if isinstance(challenge, Http01Standalone):
            address = challenge.address or ANY_ADDRESS
            solver: Solver = solving.Http01Standalone(address, challenge.port)
        elif isinstance(challenge, Http01Webroot):
            solver = solving.Http01Webroot(
                challenge.webroot,
                lambda path, data: write_atomic(path, data, mode=0o644, roots=roots),
            )
        elif isinstance(challenge, Dns01Rfc2136):
            solver = solving.Dns01Rfc2136(
                server=challenge.server,
                port=challenge.port,
                zone=challenge.zone,
                key_name=challenge.tsig_key_name,
                key_secret=challenge.tsig_secret_file.read_text().strip(),
                algorithm=challenge.tsig_algorithm,
            )
        elif isinstance(challenge, Dns01Hook):
            solver = solving.HookSolver("dns-01", challenge.hook)
        elif isinstance(challenge, TlsAlpn01Standalone):
            address = challenge.address or ANY_ADDRESS
            solver = solving.TlsAlpn01Standalone(address, challenge.port)
        else:
            raise solving.SolverError(f"{challenge.type} {challenge.mode} is not supported yet")
        return {solver.challenge_type: solver}

    # --- the daemon ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, max_sleep: float = 3600.0) -> None:
        """Pass after pass until ``stop`` is set, sleeping until the next thing is due."""
        while not stop.is_set():
            for step in self.tick():
                (log.info if step.ok else log.warning)(
                    "%s %s: %s", step.name, step.action, step.detail
                )
            wake = self.next_wakeup()
            delay = max_sleep if wake is None else (wake - self.clock.now()).total_seconds()
            stop.wait(min(max(delay, 1.0), max_sleep))


def _renew_before(settings: CertificateSettings) -> timedelta | None:
    days = settings.before_expiry_days
    return None if days is None else timedelta(days=days)
