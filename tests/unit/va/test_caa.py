"""CAA (RFC 8659) with account and method binding (RFC 8657), over scripted DNS answers."""

import pytest

from certplane.server.errors import ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va import CAARecord, NetworkPolicy, ValidationAuthority, ValidationRequest
from certplane.server.va.caa import IssueValue, parse_issue_value

ACCOUNT = "https://ca.test/acme/t1/acct/1"
CA = ("ca.test",)
HTTP = ChallengeType.HTTP_01


def issue(value, flags=0):
    return CAARecord(flags, "issue", value)


def issuewild(value, flags=0):
    return CAARecord(flags, "issuewild", value)


async def check(fake_dns, name="www.example.test", method=HTTP, account=ACCOUNT, ids=CA):
    va = ValidationAuthority(fake_dns, NetworkPolicy())
    return await va.check_caa(Identifier(IdentifierType.DNS, name), account, method, ids)


async def test_no_records_anywhere_allows_and_climbs_to_the_tld(fake_dns):
    assert await check(fake_dns, "a.b.example.test") is None
    assert fake_dns.queries == [
        ("CAA", "a.b.example.test"),
        ("CAA", "b.example.test"),
        ("CAA", "example.test"),
        ("CAA", "test"),
    ]


async def test_parent_record_applies(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test")]
    assert await check(fake_dns, "a.b.example.test") is None


async def test_parent_record_for_another_ca_refuses(fake_dns):
    fake_dns.caa["example.test"] = [issue("other-ca.test")]
    problem = await check(fake_dns, "a.b.example.test")
    assert problem.type is ProblemType.CAA
    assert problem.http_status == 403
    assert problem.detail == (
        "CAA record for example.test prevents issuance for a.b.example.test "
        "(no issue property authorizes this CA for this account and method)"
    )


async def test_climbing_stops_at_the_first_non_empty_rrset(fake_dns):
    fake_dns.caa["b.example.test"] = [issue("ca.test")]
    fake_dns.caa["example.test"] = [issue(";")]
    assert await check(fake_dns, "a.b.example.test") is None
    assert ("CAA", "example.test") not in fake_dns.queries


async def test_issuer_matches_case_insensitively(fake_dns):
    fake_dns.caa["example.test"] = [issue("  CA.Test  ")]
    assert await check(fake_dns, ids=("ca.TEST.",)) is None


async def test_any_of_the_tenant_identities_permits(fake_dns):
    fake_dns.caa["example.test"] = [issue("other-ca.test"), issue("ca2.test")]
    assert await check(fake_dns, ids=("ca.test", "ca2.test")) is None


async def test_empty_issuer_forbids_everyone(fake_dns):
    fake_dns.caa["example.test"] = [issue(";")]
    assert (await check(fake_dns)).type is ProblemType.CAA


async def test_only_iodef_allows(fake_dns):
    fake_dns.caa["example.test"] = [CAARecord(0, "iodef", "mailto:sec@example.test")]
    assert await check(fake_dns) is None


async def test_issuewild_rules_for_wildcards(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test"), issuewild("other-ca.test")]
    problem = await check(fake_dns, "*.example.test", method=ChallengeType.DNS_01)
    assert problem.type is ProblemType.CAA
    assert "no issuewild property" in problem.detail
    assert await check(fake_dns, "www.example.test") is None


async def test_wildcard_falls_back_to_issue(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test")]
    assert await check(fake_dns, "*.example.test", method=ChallengeType.DNS_01) is None


async def test_wildcard_lookup_starts_at_the_base_name(fake_dns):
    await check(fake_dns, "*.example.test", method=ChallengeType.DNS_01)
    assert fake_dns.queries[0] == ("CAA", "example.test")


async def test_issuewild_is_ignored_for_plain_names(fake_dns):
    fake_dns.caa["example.test"] = [issuewild(";"), issue("ca.test")]
    assert await check(fake_dns) is None


async def test_issuewild_permits_a_wildcard(fake_dns):
    fake_dns.caa["example.test"] = [issue(";"), issuewild("ca.test")]
    assert await check(fake_dns, "*.example.test", method=ChallengeType.DNS_01) is None


async def test_accounturi_match_permits(fake_dns):
    fake_dns.caa["example.test"] = [issue(f"ca.test; accounturi={ACCOUNT}")]
    assert await check(fake_dns) is None


async def test_accounturi_mismatch_refuses(fake_dns):
    fake_dns.caa["example.test"] = [issue(f"ca.test; accounturi={ACCOUNT}")]
    problem = await check(fake_dns, account="https://ca.test/acme/t1/acct/2")
    assert problem.type is ProblemType.CAA


async def test_one_of_several_accounts_permits(fake_dns):
    fake_dns.caa["example.test"] = [
        issue("ca.test; accounturi=https://ca.test/acme/t1/acct/9"),
        issue(f"ca.test;accounturi={ACCOUNT}"),
    ]
    assert await check(fake_dns) is None


@pytest.mark.parametrize(
    ("methods", "method", "allowed"),
    [
        ("http-01", ChallengeType.HTTP_01, True),
        ("dns-01,http-01", ChallengeType.HTTP_01, True),
        ("dns-01,http-01", ChallengeType.TLS_ALPN_01, False),
        ("dns-01", ChallengeType.DNS_01, True),
        ("dns-01", ChallengeType.HTTP_01, False),
        ("http", ChallengeType.HTTP_01, False),
    ],
)
async def test_validationmethods(fake_dns, methods, method, allowed):
    fake_dns.caa["example.test"] = [issue(f"ca.test; validationmethods={methods}")]
    problem = await check(fake_dns, method=method)
    assert (problem is None) is allowed


async def test_both_parameters_must_hold(fake_dns):
    value = f"ca.test; accounturi={ACCOUNT}; validationmethods=dns-01"
    fake_dns.caa["example.test"] = [issue(value)]
    assert await check(fake_dns, method=ChallengeType.DNS_01) is None
    assert await check(fake_dns, method=HTTP) is not None


async def test_unknown_parameters_are_ignored(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test; policy=ev; other=1")]
    assert await check(fake_dns) is None


@pytest.mark.parametrize(
    "value",
    [
        "ca.test; accounturi",  # parameter without "="
        "ca.test; accounturi=a b",  # space in a value
        f"ca.test; accounturi={ACCOUNT}; accounturi={ACCOUNT}",  # repeated
        "ca..test",
        "-ca.test",
        "ca.test extra",
    ],
)
async def test_malformed_values_permit_nothing(fake_dns, value):
    fake_dns.caa["example.test"] = [issue(value)]
    assert (await check(fake_dns)).type is ProblemType.CAA


async def test_parameter_tags_are_case_insensitive(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test; AccountURI=https://elsewhere.test/1")]
    assert (await check(fake_dns)).type is ProblemType.CAA


async def test_unknown_critical_tag_refuses(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test"), CAARecord(128, "tbs", "unknown")]
    problem = await check(fake_dns)
    assert problem.type is ProblemType.CAA
    assert "unknown critical property 'tbs'" in problem.detail


async def test_unknown_non_critical_tag_is_ignored(fake_dns):
    fake_dns.caa["example.test"] = [issue("ca.test"), CAARecord(0, "tbs", "unknown")]
    assert await check(fake_dns) is None


async def test_known_critical_tag_is_fine(fake_dns):
    fake_dns.caa["example.test"] = [CAARecord(128, "ISSUE", "ca.test")]
    assert await check(fake_dns) is None


async def test_servfail_fails_closed_with_a_dns_problem(fake_dns):
    fake_dns.failing.add("example.test")
    problem = await check(fake_dns)
    assert problem.type is ProblemType.DNS
    assert problem.detail == (
        "While checking CAA for www.example.test: DNS problem: SERVFAIL looking up CAA for "
        "example.test"
    )


async def test_ip_identifiers_have_no_caa(fake_dns):
    va = ValidationAuthority(fake_dns, NetworkPolicy())
    ip = Identifier(IdentifierType.IP, "192.0.2.1")
    assert await va.check_caa(ip, ACCOUNT, HTTP, CA) is None
    assert fake_dns.queries == []


def test_parse_issue_value():
    assert parse_issue_value(" ca.test ;  a=1 ;b = x=y ") == IssueValue(
        "ca.test", {"a": "1", "b": "x=y"}
    )
    assert parse_issue_value(";") == IssueValue("", {})
    assert parse_issue_value("") == IssueValue("", {})
    assert parse_issue_value("ca.test;") == IssueValue("ca.test", {})
    assert parse_issue_value("ca.test; =1") is None


# --- CAA inside validate() ---------------------------------------------------------------------

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = f"{TOKEN}.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEY0zFx6hc"
TXT = "WW0R-6-1VI3POAfO7bNlCFd4HZvm2DbreawjeJejtDI"  # base64url(SHA-256(KEY_AUTHZ))


def dns01(ids):
    return ValidationRequest(
        Identifier(IdentifierType.DNS, "example.test"),
        ChallengeType.DNS_01,
        TOKEN,
        KEY_AUTHZ,
        ACCOUNT,
        ids,
    )


@pytest.fixture
def answered(fake_dns):
    fake_dns.txt["_acme-challenge.example.test"] = [TXT]
    return fake_dns


async def test_validate_checks_caa_after_the_challenge(answered):
    answered.caa["example.test"] = [issue("other-ca.test")]
    result = await ValidationAuthority(answered, NetworkPolicy()).validate(dns01(CA))
    assert not result.ok
    assert result.problem.type is ProblemType.CAA
    assert result.problem.to_json()["status"] == 403
    assert result.records == ({"hostname": "_acme-challenge.example.test"},)


async def test_validate_skips_caa_without_identities(answered):
    answered.caa["example.test"] = [issue("other-ca.test")]
    result = await ValidationAuthority(answered, NetworkPolicy()).validate(dns01(()))
    assert result.ok, result.problem
    assert all(kind != "CAA" for kind, _ in answered.queries)


async def test_validate_passes_with_permitting_caa(answered):
    answered.caa["example.test"] = [issue("ca.test; validationmethods=dns-01")]
    result = await ValidationAuthority(answered, NetworkPolicy()).validate(dns01(CA))
    assert result.ok, result.problem


async def test_caa_servfail_in_validate_is_a_dns_problem(answered):
    answered.failing.add("test")
    result = await ValidationAuthority(answered, NetworkPolicy()).validate(dns01(CA))
    assert result.problem.type is ProblemType.DNS


async def test_caa_is_not_checked_when_the_challenge_fails(fake_dns):
    result = await ValidationAuthority(fake_dns, NetworkPolicy()).validate(dns01(CA))
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert all(kind != "CAA" for kind, _ in fake_dns.queries)
