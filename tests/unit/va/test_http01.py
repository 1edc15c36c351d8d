"""http-01 against real aiohttp servers on loopback; only DNS answers are scripted."""

import itertools
import time
from ipaddress import ip_network

import pytest

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import NetworkPolicy, ValidationAuthority, ValidationRequest

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
PATH = f"/.well-known/acme-challenge/{TOKEN}"
LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


def request_for(value="example.test", kind=IdentifierType.DNS):
    return ValidationRequest(
        identifier=Identifier(kind, value),
        challenge_type=ChallengeType.HTTP_01,
        token=TOKEN,
        key_authorization=KEY_AUTHZ,
        account_uri="https://ca.test/acme/t1/acct/1",
    )


def authority(resolver, port, allowed=LOOPBACK, **settings):
    policy = NetworkPolicy(allowed_networks=allowed, http01_port=port, **settings)
    return ValidationAuthority(resolver, policy)


@pytest.fixture
async def site(start_http, fake_dns):
    """example.test → 127.0.0.1, serving the right key authorization."""
    server = await start_http()
    server.reply(PATH, 200, KEY_AUTHZ.encode())
    fake_dns.addresses["example.test"] = ["127.0.0.1"]
    return server


async def test_success_records_the_hop(site, fake_dns):
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert result.problem is None
    assert result.records == (
        {
            "url": f"http://example.test:{site.port}{PATH}",
            "hostname": "example.test",
            "port": str(site.port),
            "addressesResolved": ["127.0.0.1"],
            "addressUsed": "127.0.0.1",
        },
    )


async def test_host_header_is_the_name_with_the_port(site, fake_dns):
    await authority(fake_dns, site.port).validate(request_for())
    assert site.requests == [(PATH, f"example.test:{site.port}")]


async def test_trailing_whitespace_is_ignored(site, fake_dns):
    site.reply(PATH, 200, KEY_AUTHZ.encode() + b" \r\n\t\n")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem


async def test_leading_whitespace_is_not_ignored(site, fake_dns):
    site.reply(PATH, 200, b"\n" + KEY_AUTHZ.encode())
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE


async def test_wrong_body_is_incorrect_response_without_echo(site, fake_dns):
    site.reply(PATH, 200, b"<html>SECRET-INTERNAL-PAGE</html>")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert not result.ok
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE
    assert result.problem.http_status == 403
    assert "SECRET" not in result.problem.detail
    assert "SECRET" not in repr(result.records)
    assert "33 bytes received" in result.problem.detail


async def test_404_is_unauthorized_with_status(site, fake_dns):
    site.routes.clear()
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail == (
        f"Invalid response from http://example.test:{site.port}{PATH}: HTTP 404"
    )
    assert "not here" not in result.problem.detail


async def test_body_over_the_limit_is_refused(site, fake_dns):
    site.reply(PATH, 200, KEY_AUTHZ.encode() + b" " * 9000)
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE
    assert "larger than 8192 bytes" in result.problem.detail


async def test_body_exactly_at_the_limit_is_read(site, fake_dns):
    limit = len(KEY_AUTHZ) + 5
    site.reply(PATH, 200, KEY_AUTHZ.encode() + b"\n" * 5)
    result = await authority(fake_dns, site.port, http_body_limit=limit).validate(request_for())
    assert result.ok, result.problem


def chain(site, hops):
    """PATH → /hop/1 → … → /hop/{hops} → 200 with the key authorization."""
    paths = [PATH] + [f"/hop/{i}" for i in range(1, hops + 1)]
    for here, there in itertools.pairwise(paths):
        site.reply(here, 302, Location=there)
    site.reply(paths[-1], 200, KEY_AUTHZ.encode())


async def test_ten_redirects_are_followed(site, fake_dns):
    chain(site, 10)
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert len(result.records) == 11
    assert result.records[-1]["url"] == f"http://example.test:{site.port}/hop/10"


async def test_eleven_redirects_are_refused(site, fake_dns):
    chain(site, 11)
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail.startswith("Too many redirects: more than 10")
    assert ("/hop/11", f"example.test:{site.port}") not in site.requests


async def test_redirect_limit_follows_the_policy(site, fake_dns):
    chain(site, 2)
    result = await authority(fake_dns, site.port, max_redirects=1).validate(request_for())
    assert result.problem.detail.startswith("Too many redirects: more than 1 ")


async def test_redirect_to_another_name_is_re_resolved_with_its_own_host(site, fake_dns):
    fake_dns.addresses["www.example.test"] = ["127.0.0.1"]
    site.reply(PATH, 301, Location=f"http://www.example.test:{site.port}/moved?x=1#frag")
    site.reply("/moved?x=1", 200, KEY_AUTHZ.encode())
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert site.requests[-1] == ("/moved?x=1", f"www.example.test:{site.port}")
    assert ("A/AAAA", "www.example.test") in fake_dns.queries


async def test_redirect_to_a_forbidden_port_is_refused(site, fake_dns):
    site.reply(PATH, 302, Location="http://example.test:8443/elsewhere")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert "Invalid port in redirect target" in result.problem.detail
    assert "not 8443" in result.problem.detail


async def test_redirect_to_ftp_is_refused(site, fake_dns):
    site.reply(PATH, 302, Location="ftp://example.test/key")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert "Invalid protocol scheme in redirect target 'ftp'" in result.problem.detail


@pytest.mark.parametrize("host", ["2130706433", "127.1", "under_score.test", "-bad.test"])
async def test_redirect_to_a_non_name_is_refused(site, fake_dns, host):
    site.reply(PATH, 302, Location=f"http://{host}:{site.port}/x")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert "Invalid host in redirect target" in result.problem.detail


async def test_redirect_to_a_special_purpose_ip_is_refused(site, fake_dns):
    site.reply(PATH, 302, Location=f"http://10.1.2.3:{site.port}/x")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert "10.1.2.3 (10.0.0.0/8 Private-Use, RFC 1918)" in result.problem.detail
    assert result.records[-1]["addressesResolved"] == ["10.1.2.3"]
    assert "addressUsed" not in result.records[-1]


async def test_redirect_to_a_name_on_special_purpose_space_is_refused(site, fake_dns):
    fake_dns.addresses["metadata.test"] = ["169.254.169.254"]
    site.reply(PATH, 302, Location="http://metadata.test/latest/meta-data/")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert "No usable address for metadata.test" in result.problem.detail
    assert "169.254.169.254" in result.problem.detail


async def test_special_purpose_address_is_refused_by_default(site, fake_dns):
    result = await authority(fake_dns, site.port, allowed=()).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        "No usable address for example.test: special-purpose address "
        "127.0.0.1 (127.0.0.0/8 Loopback, RFC 1122 §3.2.1.3) refused"
    )
    assert site.requests == []


async def test_special_purpose_addresses_are_dropped_when_one_is_usable(site, fake_dns):
    fake_dns.addresses["example.test"] = ["10.0.0.1", "127.0.0.1"]
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert result.records[0]["addressesResolved"] == ["10.0.0.1", "127.0.0.1"]
    assert result.records[0]["addressUsed"] == "127.0.0.1"


async def test_no_addresses_is_a_dns_problem(site, fake_dns):
    fake_dns.addresses.clear()
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.DNS
    assert result.problem.detail == "No valid IP addresses found for example.test"


async def test_dns_failure_is_a_dns_problem(site, fake_dns):
    fake_dns.failing.add("example.test")
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.problem.type is ProblemType.DNS
    assert "SERVFAIL" in result.problem.detail


async def test_connection_refused_is_a_connection_problem(fake_dns, closed_port):
    fake_dns.addresses["example.test"] = ["127.0.0.1"]
    result = await authority(fake_dns, closed_port).validate(request_for())
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail.startswith(f"127.0.0.1 port {closed_port}: ")


async def test_a_server_that_never_answers_times_out(fake_dns, silent_server):
    fake_dns.addresses["example.test"] = ["127.0.0.1"]
    started = time.monotonic()
    va = authority(fake_dns, silent_server, timeout_seconds=0.3)
    result = await va.validate(request_for())
    assert time.monotonic() - started < 3
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == "Timeout after 0.3 s during http-01 validation"
    assert result.records[0]["addressUsed"] == "127.0.0.1"


async def test_ip_identifier_connects_to_the_ip_with_ip_host(site, fake_dns):
    result = await authority(fake_dns, site.port).validate(
        request_for("127.0.0.1", IdentifierType.IP)
    )
    assert result.ok, result.problem
    assert site.requests == [(PATH, f"127.0.0.1:{site.port}")]
    assert fake_dns.queries == []


async def test_ip_identifier_in_special_purpose_space_is_refused(site, fake_dns):
    va = authority(fake_dns, site.port, allowed=())
    result = await va.validate(request_for("127.0.0.1", IdentifierType.IP))
    assert result.problem.type is ProblemType.CONNECTION
    assert "special-purpose address 127.0.0.1" in result.problem.detail
    assert site.requests == []


async def test_ipv6_is_preferred(ipv6_loopback, start_http, fake_dns):
    site = await start_http(("::1",))
    site.reply(PATH, 200, KEY_AUTHZ.encode())
    fake_dns.addresses["example.test"] = ["127.0.0.1", "::1"]
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert result.records[0]["addressUsed"] == "::1"
    assert "addressesTried" not in result.records[0]


async def test_ipv4_is_the_fallback_when_ipv6_fails(ipv6_loopback, site, fake_dns):
    fake_dns.addresses["example.test"] = ["::1", "127.0.0.1"]
    result = await authority(fake_dns, site.port).validate(request_for())
    assert result.ok, result.problem
    assert result.records[0]["addressesTried"] == ["::1"]
    assert result.records[0]["addressUsed"] == "127.0.0.1"


async def test_ipv6_ip_identifier_uses_a_bracketed_host(ipv6_loopback, start_http, fake_dns):
    site = await start_http(("::1",))
    site.reply(PATH, 200, KEY_AUTHZ.encode())
    result = await authority(fake_dns, site.port).validate(request_for("::1", IdentifierType.IP))
    assert result.ok, result.problem
    assert site.requests == [(PATH, f"[::1]:{site.port}")]
    assert result.records[0]["url"] == f"http://[::1]:{site.port}{PATH}"
