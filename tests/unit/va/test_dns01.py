"""dns-01 with scripted TXT answers (RFC 8555 §8.4)."""

import base64
import hashlib

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import NetworkPolicy, ValidationAuthority, ValidationRequest

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
# RFC 8555 §8.4, computed here independently of the VA.
DIGEST = base64.urlsafe_b64encode(hashlib.sha256(KEY_AUTHZ.encode()).digest()).rstrip(b"=")
EXPECTED = DIGEST.decode()


def request_for(value="example.test"):
    return ValidationRequest(
        identifier=Identifier(IdentifierType.DNS, value),
        challenge_type=ChallengeType.DNS_01,
        token=TOKEN,
        key_authorization=KEY_AUTHZ,
        account_uri="https://ca.test/acme/t1/acct/1",
    )


async def validate(fake_dns, req):
    return await ValidationAuthority(fake_dns, NetworkPolicy()).validate(req)


def test_expected_value_has_no_padding():
    assert len(EXPECTED) == 43
    assert "=" not in EXPECTED


async def test_success(fake_dns):
    fake_dns.txt["_acme-challenge.example.test"] = ["unrelated", EXPECTED]
    result = await validate(fake_dns, request_for())
    assert result.ok, result.problem
    assert result.records == ({"hostname": "_acme-challenge.example.test"},)
    assert fake_dns.queries == [("TXT", "_acme-challenge.example.test")]


async def test_wildcard_uses_the_base_name(fake_dns):
    fake_dns.txt["_acme-challenge.example.test"] = [EXPECTED]
    result = await validate(fake_dns, request_for("*.example.test"))
    assert result.ok, result.problem
    assert fake_dns.queries == [("TXT", "_acme-challenge.example.test")]


async def test_wrong_value_is_unauthorized_with_the_count(fake_dns):
    fake_dns.txt["_acme-challenge.example.test"] = ["a", EXPECTED.upper()]
    result = await validate(fake_dns, request_for())
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail == (
        "Incorrect TXT record found at _acme-challenge.example.test: none of the 2 record(s) "
        "seen matches the key authorization digest"
    )


async def test_padded_value_does_not_match(fake_dns):
    fake_dns.txt["_acme-challenge.example.test"] = [EXPECTED + "="]
    assert not (await validate(fake_dns, request_for())).ok


async def test_no_record_is_unauthorized(fake_dns):
    result = await validate(fake_dns, request_for())
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail == "No TXT record found at _acme-challenge.example.test"


async def test_dns_failure_is_a_dns_problem(fake_dns):
    fake_dns.failing.add("_acme-challenge.example.test")
    result = await validate(fake_dns, request_for())
    assert result.problem.type is ProblemType.DNS
    assert result.problem.http_status == 400
    assert result.problem.detail == (
        "DNS problem: SERVFAIL looking up TXT for _acme-challenge.example.test"
    )
    assert result.records == ({"hostname": "_acme-challenge.example.test"},)
