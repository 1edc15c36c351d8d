"""The servers under test, each started fresh on free loopback ports as separate processes.

certplane: a data dir provisioned with the test helpers (tests/cptest/server.py), SQLite, the
config written as TOML, ``certplane --config FILE serve``.
Pebble: ``pebble -config FILE -dnsserver 127.0.0.1:P`` with a pebble-challtestsrv that answers
every A query with 127.0.0.1 (no AAAA, no challenge listeners of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cptest.pebble import loopback_tls_certificate, write_pebble_config

from cpbench.client import Transport
from cpbench.procs import cpu_ticks, free_port, spawn, stop

READY_SECONDS = 30.0
TENANT = "open"
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@dataclass
class Running:
    """A started target: the server whose CPU is measured, and its helper processes."""

    name: str
    directory_url: str
    server: subprocess.Popen[bytes]
    log: Path
    workdir: Path
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.server.pid

    def cpu_ticks(self) -> int:
        return cpu_ticks(self.server.pid)

    def helper_ticks(self) -> int:
        return sum(cpu_ticks(p.pid) for p in self.helpers)

    def alive(self) -> bool:
        return self.server.poll() is None and all(p.poll() is None for p in self.helpers)

    def stop(self) -> None:
        for proc in (self.server, *self.helpers):
            stop(proc)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


async def wait_ready(transport: Transport, running: Running) -> dict[str, Any]:
    """GET the directory until it answers 200 (bounded); the directory document."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not running.alive():
            raise RuntimeError(f"{running.name} exited during start:\n{running.log_tail()}")
        try:
            reply = await transport.request(
                "GET", running.directory_url, "directory", timeout=aiohttp.ClientTimeout(total=2)
            )
            if reply.status == 200:
                return reply.json()
        except (OSError, TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{running.name} not ready after {READY_SECONDS:g} s:\n{running.log_tail()}")


# ---------------------------------------------------------------- certplane


def certplane_config(workdir: Path, http01_port: int, *, tls: bool, hsm: bool = False) -> Any:
    """A `Config` from the test helpers, provisioned (tenant ``open``, EAB off).

    With ``hsm`` every CA key (root, tenant intermediate) is generated in a SoftHSM2 token of
    the workdir, and the server signs through PKCS#11.
    """
    from cptest.server import make_config, provision

    keystore = _hsm_keystore(workdir) if hsm else None
    config = make_config(
        workdir,
        f"sqlite+aiosqlite:///{workdir}/certplane.db",
        http01_port=http01_port,
        keystore=keystore,
    )
    port = free_port()
    scheme = "https" if tls else "http"
    server = dataclasses.replace(
        config.server,
        listen_host="127.0.0.1",
        listen_port=port,
        base_url=f"{scheme}://127.0.0.1:{port}",
    )
    if tls:
        cert, key = loopback_tls_certificate(workdir, "bench loopback")
        server = dataclasses.replace(server, tls_cert_file=str(cert), tls_key_file=str(key))
    validation = dataclasses.replace(
        config.validation,
        allowed_networks=("127.0.0.0/8",),
        http01_port=http01_port,
        localhost_names=True,
    )
    config = dataclasses.replace(config, server=server, validation=validation)
    provision(config, {TENANT: False})
    return config


def _hsm_keystore(workdir: Path) -> Any:
    """A SoftHSM2 token for this process and the server it starts (SOFTHSM2_CONF is set)."""
    from cptest.softhsm import session_softhsm

    from certplane.server.config import KeystoreConfig, Pkcs11Config

    hsm = session_softhsm()
    token = hsm.new_token("bench")
    return KeystoreConfig(
        backend="pkcs11",
        pkcs11=Pkcs11Config(module=hsm.module, tokens=(token,), pin_source=hsm.pin_source),
    )


def to_toml(values: dict[str, Any]) -> str:
    """The subset of TOML a `Config` needs: scalars, string lists, nested tables."""
    top = [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    lines = [*top, ""]
    for section, table in values.items():
        if isinstance(table, dict):
            lines += _toml_table(section, table)
    return "\n".join(lines)


def _toml_table(name: str, table: dict[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines.append("")
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += _toml_table(f"{name}.{key}", sub)
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def start_certplane(http01_port: int, *, tls: bool, log_level: str, hsm: bool = False) -> Running:
    workdir = Path(tempfile.mkdtemp(prefix="certplane-bench-"))
    config = certplane_config(workdir, http01_port, tls=tls, hsm=hsm)
    config = dataclasses.replace(config, log_level=log_level)
    toml_path = workdir / "certplane.toml"
    toml_path.write_text(to_toml(dataclasses.asdict(config)))
    log = workdir / "server.log"
    proc = spawn(
        [str(VENV_BIN / "certplane"), "--config", str(toml_path), "serve"], log, cwd=workdir
    )
    directory = f"{config.server.base_url}/acme/{TENANT}/directory"
    detail = {"database": config.database.url, "tls": tls, "log_level": log_level, "hsm": hsm}
    name = "certplane-hsm" if hsm else "certplane"
    return Running(name, directory, proc, log, workdir, detail=detail)


# ---------------------------------------------------------------- Pebble


PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}


def start_pebble(http01_port: int) -> Running:
    workdir = Path(tempfile.mkdtemp(prefix="pebble-bench-"))
    log = workdir / "pebble.log"
    dns_port = free_port(udp_too=True)
    dns = spawn(
        [
            "pebble-challtestsrv",
            "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{dns_port}",
            "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", f"127.0.0.1:{free_port()}",
        ],
        workdir / "challtestsrv.log",
        cwd=workdir,
    )  # fmt: skip
    port = free_port()
    config_path, _ = write_pebble_config(
        workdir,
        port=port,
        management_port=free_port(),
        http01_port=http01_port,
        tls_port=free_port(),
        common_name="bench loopback",
    )
    argv = ["pebble", "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"]
    proc = spawn(argv, log, cwd=workdir, env=PEBBLE_ENV)
    detail = {"env": PEBBLE_ENV, "dns": f"127.0.0.1:{dns_port}", "tls": True}
    return Running("pebble", f"https://127.0.0.1:{port}/dir", proc, log, workdir, [dns], detail)


def goroutine_dump(running: Running) -> str:
    """SIGQUIT makes a Go program print every goroutine's stack and exit: the hang's evidence."""
    if running.server.poll() is not None:
        return ""
    size = running.log.stat().st_size
    running.server.send_signal(signal.SIGQUIT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        running.server.wait(10)
    with running.log.open("rb") as fh:
        fh.seek(size)
        return fh.read().decode(errors="replace")
