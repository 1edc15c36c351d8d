"""Targets of the black-box conformance suite: certplane, Pebble, or any directory URL.

The suite only ever speaks HTTP to ``Target.directory`` (and ``second_directory``). Starting a
target, and handing out EAB keys the way a CA operator would, is the only thing done here that
is not ACME.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from cptest.dnslab import DnsLab
from cptest.net import free_port
from cptest.pebble import write_pebble_config
from cptest.responders import Http01Responder

READY_SECONDS = 30.0
OPEN_TENANT = "conf-open"
EAB_TENANT = "conf-eab"
PEBBLE_EAB_KEYS = 64
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


@dataclass(frozen=True)
class Eab:
    kid: str
    hmac_key: str  # base64url


@dataclass
class Target:
    """What a test may use: directory URLs, TLS trust, EAB keys, and the validation lab."""

    name: str
    directory: str
    verify: str | bool = True
    second_directory: str | None = None
    second_needs_eab: bool = False
    lab: DnsLab | None = None
    http01: Http01Responder | None = None
    _eab_factory: Callable[[], Eab | None] | None = None

    def new_eab(self) -> Eab | None:
        """A fresh EAB key for ``second_directory`` (None when the target has none to give)."""
        return self._eab_factory() if self._eab_factory else None

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies would override ``verify``
        session.verify = self.verify
        return session


def _wait_directory(
    url: str, verify: str | bool, alive: Callable[[], bool], log: Callable[[], str]
):
    """GET the directory until it answers 200, for at most ``READY_SECONDS``."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"target exited during start:\n{log()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, verify=verify, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"target not ready after {READY_SECONDS:g} s:\n{log()}")


# Every hostile knob on: each signer's first attempt at a request gets badNonce (its retry
# passes), each validation waits a second, each finalize stays "processing" for two.
HOSTILE = {
    "nonce_reject_percent": 100,
    "validation_delay_seconds": 1.0,
    "finalize_processing_seconds": 2.0,
}


@contextlib.contextmanager
def certplane_target(hostile: bool = False) -> Iterator[Target]:
    """A fresh certplane (SQLite) in a thread: an open tenant and an EAB-required tenant.

    ``hostile`` turns on the ``[testing]`` knobs of :data:`HOSTILE`.
    """
    from certplane.server.config import TestingConfig
    from cptest.server import ServerThread, make_config, provision

    workdir = Path(tempfile.mkdtemp(prefix="certplane-conformance-"))
    http01_port = free_port()
    with DnsLab() as lab, Http01Responder(http01_port) as http01:
        config = make_config(
            workdir,
            f"sqlite+aiosqlite:///{workdir}/certplane.db",
            http01_port=http01_port,
            tlsalpn01_port=lab.tlsalpn01_port,
            dns_servers=(lab.dns_server,),
            testing=TestingConfig(**HOSTILE) if hostile else None,
        )
        platform = provision(config, {OPEN_TENANT: False, EAB_TENANT: True})
        server = ServerThread(platform.config).start()
        unused = [platform.eab[EAB_TENANT]]

        def new_eab() -> Eab:
            key = unused.pop() if unused else None
            if key is None:
                key = server.call(lambda: server.provisioner().create_eab(EAB_TENANT, "conf"))
            return Eab(key.kid, key.hmac_key)

        try:
            yield Target(
                name="certplane (hostile)" if hostile else "certplane",
                directory=platform.directory(OPEN_TENANT),
                second_directory=platform.directory(EAB_TENANT),
                second_needs_eab=True,
                lab=lab,
                http01=http01,
                _eab_factory=new_eab,
            )
        finally:
            server.stop()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def _pebble(
    workdir: Path, lab: DnsLab, http01_port: int, eab_keys: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """One Pebble process on free loopback ports; yields its directory URL and TLS root."""
    workdir.mkdir(parents=True)
    port = free_port()
    config_path, cert = write_pebble_config(
        workdir,
        port=port,
        management_port=free_port(),
        http01_port=http01_port,
        tls_port=lab.tlsalpn01_port,
        common_name=f"conformance {workdir.name}",
        eab_keys=eab_keys,
    )
    log_path = workdir / "pebble.log"
    argv = ["pebble", "-config", str(config_path), "-dnsserver", lab.dns_server]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", **PEBBLE_ENV},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        directory = f"https://127.0.0.1:{port}/dir"
        _wait_directory(
            directory,
            str(cert),
            lambda: proc.poll() is None,
            lambda: log_path.read_text(errors="replace")[-4000:],
        )
        yield directory, cert
    finally:
        _stop(proc)


@contextlib.contextmanager
def pebble_target() -> Iterator[Target]:
    """Debian's Pebble on free loopback ports, validating against a DnsLab and our responder.

    A second Pebble that requires EAB (keys configured up front, as a CA operator would) plays
    the second tenant: two Pebble processes share nothing, which is what the tenancy checks ask
    of two certplane tenants. Each has its own self-signed TLS certificate (distinct subjects);
    the session trusts a bundle of both.
    """
    workdir = Path(tempfile.mkdtemp(prefix="pebble-conformance-"))
    http01_port = free_port()
    eab_keys = {f"kid-{i}": _b64url(secrets.token_bytes(32)) for i in range(PEBBLE_EAB_KEYS)}
    unused = [Eab(kid, key) for kid, key in eab_keys.items()]
    with (
        DnsLab() as lab,
        Http01Responder(http01_port) as http01,
        _pebble(workdir / "open", lab, http01_port) as (directory, cert),
        _pebble(workdir / "eab", lab, http01_port, eab_keys) as (second, second_cert),
    ):
        bundle = workdir / "roots.pem"
        bundle.write_bytes(cert.read_bytes() + second_cert.read_bytes())
        yield Target(
            name="pebble",
            directory=directory,
            verify=str(bundle),
            second_directory=second,
            second_needs_eab=True,
            lab=lab,
            http01=http01,
            _eab_factory=lambda: unused.pop() if unused else None,
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@contextlib.contextmanager
def external_target(
    directory: str,
    ca_bundle: str | None,
    eab: Eab | None,
    second_directory: str | None,
) -> Iterator[Target]:
    """Any directory URL; no validation lab, so challenge tests skip."""
    given = [eab] if eab else []
    yield Target(
        name="external",
        directory=directory,
        verify=ca_bundle or True,
        second_directory=second_directory,
        second_needs_eab=eab is not None,
        _eab_factory=lambda: given.pop() if given else None,
    )
