"""`DnsResolver` against a tiny in-process DNS server on a loopback UDP port."""

import asyncio
import re
import socket

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from certplane.server.va import CAARecord, DnsError, DnsResolver, NetworkPolicy

Zone = dict[tuple[str, str], list[str]]  # (name., type) -> rdata texts


class TinyDns(asyncio.DatagramProtocol):
    """Answers from ``zone``; ``rcodes`` (by name or (name, type)) override the rcode;
    ``silent`` names get no answer at all."""

    def __init__(self) -> None:
        self.zone: Zone = {}
        self.rcodes: dict[str | tuple[str, str], int] = {}
        self.silent: set[str] = set()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        query = dns.message.from_wire(data)
        question = query.question[0]
        name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        if name in self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        rcode = self.rcodes.get((name, rdtype), self.rcodes.get(name, dns.rcode.NOERROR))
        response.set_rcode(rcode)
        texts = self.zone.get((name, rdtype))
        if texts:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rdtype, texts))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def tiny_dns():
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        TinyDns, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    port = transport.get_extra_info("sockname")[1]
    yield protocol, NetworkPolicy(dns_servers=(("127.0.0.1", port),), timeout_seconds=0.2)
    transport.close()


async def test_addresses_from_both_families(tiny_dns):
    server, policy = tiny_dns
    server.zone[("www.example.test.", "A")] = ["192.0.2.1"]
    server.zone[("www.example.test.", "AAAA")] = ["2001:db8::1"]
    addresses = await DnsResolver(policy).resolve_addresses("www.example.test")
    assert sorted(map(str, addresses)) == ["192.0.2.1", "2001:db8::1"]


async def test_one_failing_family_is_tolerated_when_the_other_answers(tiny_dns):
    server, policy = tiny_dns
    server.zone[("v4.example.test.", "A")] = ["192.0.2.1"]
    server.rcodes[("v4.example.test.", "AAAA")] = dns.rcode.SERVFAIL
    addresses = await DnsResolver(policy).resolve_addresses("v4.example.test")
    assert list(map(str, addresses)) == ["192.0.2.1"]


async def test_both_families_failing_raise(tiny_dns):
    server, policy = tiny_dns
    server.rcodes["down.example.test."] = dns.rcode.SERVFAIL
    with pytest.raises(DnsError, match="SERVFAIL looking up"):
        await DnsResolver(policy).resolve_addresses("down.example.test")


async def test_an_unanswered_query_times_out(tiny_dns):
    server, policy = tiny_dns
    server.silent.add("slow.example.test.")
    with pytest.raises(DnsError, match=re.escape("timed out looking up TXT for slow.example.test")):
        await DnsResolver(policy).resolve_txt("slow.example.test")


async def test_nxdomain_and_nodata_are_empty(tiny_dns):
    server, policy = tiny_dns
    server.rcodes["gone.example.test."] = dns.rcode.NXDOMAIN
    resolver = DnsResolver(policy)
    assert await resolver.resolve_addresses("gone.example.test") == []
    assert await resolver.resolve_txt("empty.example.test") == []
    assert await resolver.resolve_caa("empty.example.test") == []


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
async def test_server_failures_raise(tiny_dns, rcode):
    server, policy = tiny_dns
    server.rcodes["broken.example.test."] = rcode
    with pytest.raises(DnsError, match=re.escape("looking up CAA for broken.example.test")):
        await DnsResolver(policy).resolve_caa("broken.example.test")


async def test_txt_strings_are_joined(tiny_dns):
    server, policy = tiny_dns
    server.zone[("_acme-challenge.example.test.", "TXT")] = ['"abc" "def"', '"second"']
    values = await DnsResolver(policy).resolve_txt("_acme-challenge.example.test.")
    assert sorted(values) == ["abcdef", "second"]


async def test_caa_flags_tag_and_value(tiny_dns):
    server, policy = tiny_dns
    server.zone[("example.test.", "CAA")] = ['128 tbs "x"', '0 issue "ca.test; accounturi=u"']
    records = await DnsResolver(policy).resolve_caa("example.test")
    assert sorted(records, key=lambda r: r.flags) == [
        CAARecord(0, "issue", "ca.test; accounturi=u"),
        CAARecord(128, "tbs", "x"),
    ]
    assert [r.critical for r in sorted(records, key=lambda r: r.flags)] == [False, True]


async def test_invalid_names_are_dns_errors(tiny_dns):
    _, policy = tiny_dns
    with pytest.raises(DnsError):
        await DnsResolver(policy).resolve_txt("a" * 64 + ".example.test")
