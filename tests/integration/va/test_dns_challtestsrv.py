"""The VA's real `DnsResolver` against a real DNS server: pebble-challtestsrv on loopback.

Each test starts its own server on free loopback ports and stopped afterwards; readiness is a
bounded loop of connection attempts. Records are set through its management API.
"""

import asyncio
import contextlib
import re
import shutil
import socket
from ipaddress import ip_address, ip_network

import aiohttp
import pytest
from aiohttp import web

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import (
    CAARecord,
    DnsError,
    DnsResolver,
    NetworkPolicy,
    ValidationAuthority,
    ValidationRequest,
)

CHALLTESTSRV = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
TXT = "WW0R-6-1VI3POAfO7bNlCFd4HZvm2DbreawjeJejtDI"  # base64url(SHA-256(KEY_AUTHZ))
ACCOUNT = "https://ca.test/acme/t1/acct/1"

# NOTE(no-skip): `make test` installs Debian's pebble package; a missing binary is a failure.
assert shutil.which(CHALLTESTSRV), "pebble-challtestsrv is missing: apt-get install pebble"


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (DNS listens on both)."""
    for _ in range(20):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with contextlib.suppress(OSError):
                udp.bind(("127.0.0.1", port))
                return int(port)
    raise RuntimeError("no free port")


async def wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    """Bounded polling: up to 200 connection attempts, 25 ms apart."""
    for _ in range(200):
        if process.returncode is not None:
            raise RuntimeError("pebble-challtestsrv exited early")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.025)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class ChallTestSrv:
    def __init__(self, dns_port: int, management_port: int, session: aiohttp.ClientSession):
        self.dns_port = dns_port
        self._base = f"http://127.0.0.1:{management_port}"
        self._session = session

    async def post(self, endpoint: str, **payload: object) -> None:
        async with self._session.post(f"{self._base}/{endpoint}", json=payload) as resp:
            assert resp.status == 200, await resp.text()

    def policy(self, **settings) -> NetworkPolicy:
        return NetworkPolicy(dns_servers=(("127.0.0.1", self.dns_port),), **settings)


@pytest.fixture
async def challtestsrv():
    dns_port, management_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        CHALLTESTSRV,
        "-dns01", f"127.0.0.1:{dns_port}",
        "-management", f"127.0.0.1:{management_port}",
        "-http01", "", "-https01", "", "-tlsalpn01", "",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(management_port, process)
        await wait_for_port(dns_port, process)
        async with aiohttp.ClientSession() as session:
            yield ChallTestSrv(dns_port, management_port, session)
    finally:
        process.terminate()
        await process.wait()


def dns01(name="example.test", caa_identities=()):
    return ValidationRequest(
        Identifier(IdentifierType.DNS, name),
        ChallengeType.DNS_01,
        TOKEN,
        KEY_AUTHZ,
        ACCOUNT,
        caa_identities,
    )


async def test_dns01_through_a_real_server(challtestsrv):
    await challtestsrv.post("set-txt", host="_acme-challenge.example.test.", value=TXT)
    policy = challtestsrv.policy()
    result = await ValidationAuthority(DnsResolver(policy), policy).validate(dns01())
    assert result.ok, result.problem


async def test_dns01_wildcard_follows_a_cname(challtestsrv):
    await challtestsrv.post("set-txt", host="_acme-challenge.delegated.test.", value=TXT)
    await challtestsrv.post(
        "set-cname", host="_acme-challenge.example.test.", target="_acme-challenge.delegated.test."
    )
    policy = challtestsrv.policy()
    result = await ValidationAuthority(DnsResolver(policy), policy).validate(
        dns01("*.example.test")
    )
    assert result.ok, result.problem


async def test_dns01_wrong_value_and_missing_record(challtestsrv):
    await challtestsrv.post("set-txt", host="_acme-challenge.example.test.", value="wrong")
    policy = challtestsrv.policy()
    va = ValidationAuthority(DnsResolver(policy), policy)
    wrong = await va.validate(dns01())
    assert wrong.problem.type is ProblemType.UNAUTHORIZED
    assert "1 record(s)" in wrong.problem.detail
    missing = await va.validate(dns01("other.test"))
    assert missing.problem.detail == "No TXT record found at _acme-challenge.other.test"


async def test_servfail_is_a_dns_error(challtestsrv):
    await challtestsrv.post("set-servfail", host="_acme-challenge.broken.test.")
    policy = challtestsrv.policy()
    resolver = DnsResolver(policy)
    expected = re.escape("SERVFAIL looking up TXT for _acme-challenge.broken.test")
    with pytest.raises(DnsError, match=expected):
        await resolver.resolve_txt("_acme-challenge.broken.test")
    result = await ValidationAuthority(resolver, policy).validate(dns01("broken.test"))
    assert result.problem.type is ProblemType.DNS


async def test_addresses_and_caa(challtestsrv):
    await challtestsrv.post("add-a", host="site.test.", addresses=["192.0.2.10"])
    await challtestsrv.post("add-aaaa", host="site.test.", addresses=["2001:db8::10"])
    await challtestsrv.post(
        "add-caa", host="example.test.", policies=[{"tag": "issue", "value": "ca.test"}]
    )
    resolver = DnsResolver(challtestsrv.policy())
    assert sorted(map(str, await resolver.resolve_addresses("site.test"))) == [
        "192.0.2.10",
        "2001:db8::10",
    ]
    assert await resolver.resolve_caa("example.test") == [CAARecord(0, "issue", "ca.test")]
    assert await resolver.resolve_caa("www.example.test") == []
    va = ValidationAuthority(resolver, challtestsrv.policy())
    ident = Identifier(IdentifierType.DNS, "www.example.test")
    assert await va.check_caa(ident, ACCOUNT, ChallengeType.HTTP_01, ("ca.test",)) is None
    refused = await va.check_caa(ident, ACCOUNT, ChallengeType.HTTP_01, ("other.test",))
    assert refused.type is ProblemType.CAA


async def test_caa_servfail_fails_closed(challtestsrv):
    await challtestsrv.post("set-servfail", host="example.test.")
    policy = challtestsrv.policy()
    va = ValidationAuthority(DnsResolver(policy), policy)
    ident = Identifier(IdentifierType.DNS, "www.example.test")
    problem = await va.check_caa(ident, ACCOUNT, ChallengeType.HTTP_01, ("ca.test",))
    assert problem.type is ProblemType.DNS


async def test_http01_with_real_dns_and_a_real_responder(challtestsrv):
    async def key_authorization(request: web.Request) -> web.Response:
        return web.Response(text=KEY_AUTHZ)

    app = web.Application()
    app.router.add_get(f"/.well-known/acme-challenge/{TOKEN}", key_authorization)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        await challtestsrv.post("add-a", host="site.test.", addresses=["127.0.0.1"])
        await challtestsrv.post("add-aaaa", host="site.test.", addresses=["2001:db8::1"])
        policy = challtestsrv.policy(
            allowed_networks=(ip_network("127.0.0.0/8"),), http01_port=port
        )
        req = ValidationRequest(
            Identifier(IdentifierType.DNS, "site.test"),
            ChallengeType.HTTP_01,
            TOKEN,
            KEY_AUTHZ,
            ACCOUNT,
        )
        result = await ValidationAuthority(DnsResolver(policy), policy).validate(req)
    finally:
        await runner.cleanup()
    assert result.ok, result.problem
    (record,) = result.records
    assert {ip_address(a) for a in record["addressesResolved"]} == {
        ip_address("127.0.0.1"),
        ip_address("2001:db8::1"),
    }
    assert record["addressUsed"] == "127.0.0.1"  # the documentation-prefix AAAA was refused
