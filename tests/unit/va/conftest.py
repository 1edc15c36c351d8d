"""Fixtures for the VA tests: a scripted DNS, and real responders on loopback sockets.

Only DNS answers are faked (`FakeResolver`); every http-01 and tls-alpn-01 test talks to a real
server on a free loopback port that the test starts and stops.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import pytest
from aiohttp import web
from cptest.tlsalpn import acme_identifier_value, write_validation_cert
from cryptography import x509

from certplane.server.va.api import CAARecord, DnsError, IPAddress

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMBPRINT = "nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
KEY_AUTHZ = f"{TOKEN}.{THUMBPRINT}"


class FakeResolver:
    """Answers from dictionaries; names in ``failing`` raise `DnsError` like a SERVFAIL."""

    def __init__(self) -> None:
        self.addresses: dict[str, list[str]] = {}
        self.txt: dict[str, list[str]] = {}
        self.caa: dict[str, list[CAARecord]] = {}
        self.failing: set[str] = set()
        self.queries: list[tuple[str, str]] = []

    def _ask(self, kind: str, name: str) -> None:
        self.queries.append((kind, name))
        if name in self.failing:
            raise DnsError(f"DNS problem: SERVFAIL looking up {kind} for {name}")

    async def resolve_addresses(self, name: str) -> list[IPAddress]:
        self._ask("A/AAAA", name)
        return [ip_address(a) for a in self.addresses.get(name, [])]

    async def resolve_txt(self, name: str) -> list[str]:
        self._ask("TXT", name)
        return list(self.txt.get(name, []))

    async def resolve_caa(self, name: str) -> list[CAARecord]:
        self._ask("CAA", name)
        return list(self.caa.get(name, []))


@pytest.fixture
def fake_dns() -> FakeResolver:
    return FakeResolver()


def _loopback_v6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def ipv6_loopback() -> None:
    if not _loopback_v6_available():
        pytest.skip("no IPv6 loopback here")


# --- http-01 responder ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpResponder:
    """A real aiohttp server; ``routes`` maps a path to its `Reply`; requests are logged."""

    port: int = 0
    routes: dict[str, Reply] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def reply(self, path: str, status: int = 200, body: bytes = b"", **headers: str) -> None:
        self.routes[path] = Reply(status, body, dict(headers))

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, request.headers.get("Host", "")))
        reply = self.routes.get(request.path_qs, Reply(404, b"not here"))
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


StartHttp = Callable[..., Awaitable[HttpResponder]]


@pytest.fixture
async def start_http() -> AsyncIterator[StartHttp]:
    """Start an `HttpResponder` on the given loopback hosts and one shared free port."""
    runners: list[web.AppRunner] = []

    async def start(hosts: tuple[str, ...] = ("127.0.0.1",)) -> HttpResponder:
        responder = HttpResponder()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", responder.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        for host in hosts:
            await web.TCPSite(runner, host, responder.port).start()
            responder.port = runner.addresses[-1][1]
        return responder

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on loopback that accepts and never answers; yields its port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- tls-alpn-01 responder --------------------------------------------------------------------


@pytest.fixture
def good_acme_value() -> bytes:
    return acme_identifier_value(KEY_AUTHZ)


@dataclass
class TlsResponder:
    port: int
    sni: list[str | None]


StartTls = Callable[..., Awaitable[TlsResponder]]


@pytest.fixture
async def start_tls(tmp_path: Path) -> AsyncIterator[StartTls]:
    """Start an asyncio TLS server on loopback presenting one validation certificate."""
    servers: list[asyncio.Server] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(
        sans: list[x509.GeneralName],
        acme_value: bytes | None,
        critical: bool = True,
        alpn: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> TlsResponder:
        cert_path, key_path = write_validation_cert(tmp_path, sans, acme_value, critical)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        seen: list[str | None] = []

        def on_sni(obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            seen.append(name)

        ctx.sni_callback = on_sni  # type: ignore[assignment]
        server = await asyncio.start_server(serve, host, 0, ssl=ctx)
        servers.append(server)
        return TlsResponder(server.sockets[0].getsockname()[1], seen)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
