"""tls-alpn-01 against real asyncio TLS servers on loopback (RFC 8737, RFC 8738 §6)."""

import asyncio
from ipaddress import ip_address, ip_network

import pytest
from cryptography import x509

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import NetworkPolicy, ValidationAuthority, ValidationRequest

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
ALPN = ["acme-tls/1"]
NAME = x509.DNSName("example.test")


def request_for(value="example.test", kind=IdentifierType.DNS):
    return ValidationRequest(
        identifier=Identifier(kind, value),
        challenge_type=ChallengeType.TLS_ALPN_01,
        token=TOKEN,
        key_authorization=KEY_AUTHZ,
        account_uri="https://ca.test/acme/t1/acct/1",
    )


V4_LOOPBACK = (ip_network("127.0.0.0/8"),)


async def validate(fake_dns, port, req=None, allowed=V4_LOOPBACK):
    fake_dns.addresses.setdefault("example.test", ["127.0.0.1"])
    policy = NetworkPolicy(allowed_networks=allowed, tlsalpn01_port=port)
    return await ValidationAuthority(fake_dns, policy).validate(req or request_for())


async def test_success_with_sni_and_records(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.ok, result.problem
    assert server.sni == ["example.test"]
    assert result.records == (
        {
            "hostname": "example.test",
            "port": str(server.port),
            "addressesResolved": ["127.0.0.1"],
            "addressUsed": "127.0.0.1",
        },
    )


async def test_san_comparison_ignores_case(start_tls, fake_dns, good_acme_value):
    server = await start_tls([x509.DNSName("EXAMPLE.test")], good_acme_value, alpn=ALPN)
    assert (await validate(fake_dns, server.port)).ok


async def test_missing_alpn_is_unauthorized(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value, alpn=None)
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert 'cannot negotiate ALPN protocol "acme-tls/1"' in result.problem.detail


async def test_other_alpn_protocol_is_unauthorized(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value, alpn=["h2", "http/1.1"])
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert "ALPN" in result.problem.detail


async def test_non_critical_extension_is_unauthorized(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value, critical=False, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail.endswith("its acmeIdentifier extension is not critical")


async def test_missing_extension_is_unauthorized(start_tls, fake_dns):
    server = await start_tls([NAME], None, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.detail.endswith("it has no acmeIdentifier extension")


@pytest.mark.parametrize(
    "value",
    [
        b"\x04\x20" + bytes(32),  # the right shape, the wrong digest
        b"\x04\x20" + b"\x00" * 31,  # truncated
        bytes(34),  # not an OCTET STRING
    ],
)
async def test_wrong_digest_is_unauthorized(start_tls, fake_dns, value):
    server = await start_tls([NAME], value, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert "does not hold the key authorization digest" in result.problem.detail


async def test_bare_digest_without_der_wrapping_is_refused(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value[2:], alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert "does not hold the key authorization digest" in result.problem.detail


async def test_two_sans_are_unauthorized(start_tls, fake_dns, good_acme_value):
    sans = [NAME, x509.DNSName("other.test")]
    server = await start_tls(sans, good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail.endswith("it has 2 subjectAltNames, expected exactly 1")


async def test_wrong_san_is_unauthorized(start_tls, fake_dns, good_acme_value):
    server = await start_tls([x509.DNSName("other.test")], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail == (
        "Incorrect validation certificate for tls-alpn-01 challenge for example.test: "
        "its subjectAltName is DNSName other.test"
    )


async def test_missing_san_is_unauthorized(start_tls, fake_dns, good_acme_value):
    server = await start_tls([], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port)
    assert result.problem.detail.endswith("it has no subjectAltName extension")


async def test_ip_identifier_uses_the_reverse_name_as_sni(start_tls, fake_dns, good_acme_value):
    san = x509.IPAddress(ip_address("127.0.0.1"))
    server = await start_tls([san], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port, request_for("127.0.0.1", IdentifierType.IP))
    assert result.ok, result.problem
    assert server.sni == ["1.0.0.127.in-addr.arpa"]
    assert fake_dns.queries == []


async def test_ip_identifier_needs_an_ip_san(start_tls, fake_dns, good_acme_value):
    server = await start_tls([x509.DNSName("127.0.0.1")], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port, request_for("127.0.0.1", IdentifierType.IP))
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert "DNSName 127.0.0.1" in result.problem.detail


async def test_ipv6_identifier(ipv6_loopback, start_tls, fake_dns, good_acme_value):
    san = x509.IPAddress(ip_address("::1"))
    server = await start_tls([san], good_acme_value, alpn=ALPN, host="::1")
    req = request_for("::1", IdentifierType.IP)
    result = await validate(fake_dns, server.port, req, allowed=(ip_network("::1/128"),))
    assert result.ok, result.problem
    assert server.sni == ["1." + "0." * 31 + "ip6.arpa"]


async def test_special_purpose_address_is_refused_by_default(start_tls, fake_dns, good_acme_value):
    server = await start_tls([NAME], good_acme_value, alpn=ALPN)
    result = await validate(fake_dns, server.port, allowed=())
    assert result.problem.type is ProblemType.CONNECTION
    assert "special-purpose address 127.0.0.1" in result.problem.detail
    assert server.sni == []


async def test_not_tls_is_a_tls_problem(fake_dns):
    async def plain_http(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    try:
        result = await validate(fake_dns, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
    assert result.problem.type is ProblemType.TLS
    assert "TLS handshake failed" in result.problem.detail


async def test_connection_refused_is_a_connection_problem(fake_dns, closed_port):
    result = await validate(fake_dns, closed_port)
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail.startswith(f"127.0.0.1 port {closed_port}: ")


async def test_silent_server_times_out(fake_dns, silent_server):
    fake_dns.addresses["example.test"] = ["127.0.0.1"]
    policy = NetworkPolicy(
        allowed_networks=(ip_network("127.0.0.0/8"),),
        tlsalpn01_port=silent_server,
        timeout_seconds=0.3,
    )
    result = await ValidationAuthority(fake_dns, policy).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == "Timeout after 0.3 s during tls-alpn-01 validation"
