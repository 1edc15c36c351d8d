"""The ValidationAuthority's contract: never raises, defensive about its inputs."""

import logging

import pytest

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import NetworkPolicy, ValidationAuthority, ValidationRequest

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
DNS = IdentifierType.DNS
IP = IdentifierType.IP


def req(kind=DNS, value="example.test", challenge=ChallengeType.HTTP_01, token=TOKEN, ka=KEY_AUTHZ):
    return ValidationRequest(Identifier(kind, value), challenge, token, ka, "https://ca.test/a/1")


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (req(IP, "192.0.2.1", ChallengeType.DNS_01), "dns-01 cannot validate an IP identifier"),
        (req(IP, "not-an-ip"), "'not-an-ip' is not an IP address"),
        (req(DNS, "*.example.test"), "a wildcard identifier cannot be validated with http-01"),
        (req(token="../../etc/passwd"), "challenge token is not base64url"),
        (req(token=""), "challenge token is not base64url"),
        (req(ka="someone-else.thumb"), "key authorization does not belong to the challenge"),
    ],
)
async def test_malformed_requests(fake_dns, request_, detail):
    result = await ValidationAuthority(fake_dns, NetworkPolicy()).validate(request_)
    assert not result.ok
    assert result.problem.type is ProblemType.MALFORMED
    assert result.problem.detail.startswith(detail)
    assert fake_dns.queries == []


class ExplodingResolver:
    async def resolve_addresses(self, name):
        raise RuntimeError("secret internal state /etc/certplane.toml")

    async def resolve_txt(self, name):
        raise KeyError("secret")

    async def resolve_caa(self, name):
        raise RuntimeError("secret")


@pytest.mark.parametrize("challenge", list(ChallengeType))
async def test_unexpected_errors_become_a_safe_connection_problem(challenge, caplog):
    va = ValidationAuthority(ExplodingResolver(), NetworkPolicy())
    with caplog.at_level(logging.ERROR):
        result = await va.validate(req(challenge=challenge))
    assert not result.ok
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == f"unexpected error during {challenge} validation"
    assert "secret" in caplog.text  # the cause is in the log, never in the problem


async def test_unexpected_caa_error_is_a_dns_problem():
    va = ValidationAuthority(ExplodingResolver(), NetworkPolicy())
    ident = Identifier(DNS, "example.test")
    problem = await va.check_caa(ident, "https://ca.test/a/1", ChallengeType.DNS_01, ("ca.test",))
    assert problem.type is ProblemType.DNS
    assert "secret" not in problem.detail
