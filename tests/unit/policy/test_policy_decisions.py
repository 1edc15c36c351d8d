"""Policy decisions: every rule kind accepts and refuses, names itself by a pointer that resolves
in the document, and an EAB section only narrows."""

from __future__ import annotations

import ipaddress
import time
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from certplane.policy.document import (
    SCHEMA_NAME,
    CsrKey,
    Name,
    Policy,
    RequestFacts,
    UnknownProfile,
    Violation,
    csr_key_of,
    policy_from_json,
)

LIMIT = 0.5
FACTS = RequestFacts("acct-1", ("mailto:ops@example.com",), None, None)
CI = RequestFacts("acct-ci", (), "kid-ci", "ci robot")
EC256 = CsrKey("ec-p256")


def policy(**sections: Any) -> Policy:
    return policy_from_json({"schema": SCHEMA_NAME, **sections})


def resolve(document: Any, at: str) -> Any:
    """RFC 6901 §4: evaluate a JSON pointer; a KeyError or IndexError if it does not resolve."""
    assert at == "" or at.startswith("/"), at
    node = document
    for token in at.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def resolving(found: Policy, violations: list[Violation]) -> list[Violation]:
    document = found.document
    for violation in violations:
        resolve(document, violation.rule)
    return violations


def name(value: str) -> Name:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return Name("dns", value)
    return Name("ip", value)


def order(found: Policy, *values: str, facts: RequestFacts = FACTS) -> list[Violation]:
    names = [name(v) for v in values]
    return resolving(found, found.check_order(names, facts, cel_time_limit=LIMIT))


def rules(found: Policy, *values: str, facts: RequestFacts = FACTS) -> list[str]:
    return [v.rule for v in order(found, *values, facts=facts)]


def finalize(
    found: Policy, key: CsrKey = EC256, *values: str, facts: RequestFacts = FACTS
) -> list[Violation]:
    names = [name(v) for v in values or ("www.example.com",)]
    return resolving(found, found.check_finalize(names, facts, key, cel_time_limit=LIMIT))


def account(found: Policy, facts: RequestFacts = FACTS) -> list[Violation]:
    return resolving(found, found.check_account(facts, cel_time_limit=LIMIT))


def cel_rule(
    expression: str, at: str = "order", rule_id: str = "r", **extra: str
) -> dict[str, str]:
    return {"id": rule_id, "at": at, "expression": expression, **extra}


# -- the built-in policy -----------------------------------------------------------------------


def test_the_builtin_policy_is_permissive():
    builtin = Policy.builtin()
    names = ["www.example.com", "*.example.com", "192.0.2.1", "2001:db8::1"]
    assert order(builtin, *names) == []
    assert finalize(builtin, CsrKey("rsa-4096")) == []
    assert account(builtin, RequestFacts("a", (), None, None)) == []
    assert builtin.validity("default", None) == timedelta(days=90)
    assert builtin.approval_rule([name("*.example.com")], FACTS, cel_time_limit=LIMIT) is None
    assert builtin.approval_deadline == timedelta(hours=72)
    assert builtin.renewal_window == (0.6667, 0.9)
    assert builtin.profiles == {"default": "The tenant's default profile."}
    assert builtin.issuer_for("default") is None
    assert not builtin.uses_cel


def test_the_builtin_policy_refuses_more_than_100_identifiers_and_other_keys():
    builtin = Policy.builtin()
    many = [f"h{n}.example.com" for n in range(101)]
    assert [(v.rule, v.name) for v in order(builtin, *many)] == [
        ("/identifiers/max_per_order", None)
    ]
    for algorithm in ("ec-p521", "rsa-8192", "ed25519", "rsa-1024"):
        assert [v.rule for v in finalize(builtin, CsrKey(algorithm))] == ["/keys/allowed"]


# -- identifiers -------------------------------------------------------------------------------


ALLOW = policy(
    identifiers={
        "allow": {
            "suffixes": ["corp.example"],
            "names": ["www.example.com", "*.x.example"],
            "ip_ranges": ["192.0.2.0/24", "2001:db8::/32"],
        }
    }
)


@pytest.mark.parametrize(
    "value",
    [
        "corp.example",
        "a.corp.example",
        "a.b.corp.example",
        "*.corp.example",
        "www.example.com",
        "*.x.example",
        "192.0.2.0",
        "192.0.2.255",
        "2001:db8::1",
    ],
)
def test_allow_list_permits(value: str):
    assert order(ALLOW, value) == []


@pytest.mark.parametrize(
    "value",
    [
        "xcorp.example",  # label-aligned: not below corp.example
        "corp.example.evil",
        "example.com",
        "a.www.example.com",  # an exact name covers nothing below it
        "*.example.com",
        "a.x.example",  # a wildcard entry only matches the same wildcard
        "x.example",
        "192.0.3.1",
        "2001:db9::1",
    ],
)
def test_allow_list_refuses(value: str):
    (violation,) = order(ALLOW, value)
    assert violation == Violation(
        "/identifiers/allow", f"{value} matches no entry of the allow list", name(value)
    )


def test_an_allow_list_without_ip_ranges_refuses_every_address():
    dns_only = policy(identifiers={"allow": {"suffixes": ["example.com"]}})
    assert rules(dns_only, "192.0.2.1", "www.example.com") == ["/identifiers/allow"]


DENY = policy(
    identifiers={
        "deny": {
            "suffixes": ["internal.example", "admin.corp.example"],
            "names": ["db.example.com", "*.legacy.example"],
            "ip_ranges": ["10.0.0.0/8", "fd00::/8"],
        }
    }
)


@pytest.mark.parametrize(
    ("value", "rule", "detail"),
    [
        (
            "db.internal.example",
            "/identifiers/deny/suffixes/0",
            'db.internal.example is denied by suffix "internal.example"',
        ),
        (
            "internal.example",
            "/identifiers/deny/suffixes/0",
            'internal.example is denied by suffix "internal.example"',
        ),
        (
            "*.internal.example",
            "/identifiers/deny/suffixes/0",
            '*.internal.example is denied by suffix "internal.example"',
        ),
        (
            "*.corp.example",
            "/identifiers/deny/suffixes/1",
            '*.corp.example is denied by suffix "admin.corp.example"',
        ),
        (
            "db.example.com",
            "/identifiers/deny/names/0",
            'db.example.com is denied by name "db.example.com"',
        ),
        (
            "*.example.com",
            "/identifiers/deny/names/0",
            '*.example.com is denied by name "db.example.com"',
        ),
        (
            "*.legacy.example",
            "/identifiers/deny/names/1",
            '*.legacy.example is denied by name "*.legacy.example"',
        ),
        (
            "10.1.2.3",
            "/identifiers/deny/ip_ranges/0",
            '10.1.2.3 is denied by IP range "10.0.0.0/8"',
        ),
        ("fd12::1", "/identifiers/deny/ip_ranges/1", 'fd12::1 is denied by IP range "fd00::/8"'),
    ],
)
def test_deny_list_refuses(value: str, rule: str, detail: str):
    assert order(DENY, value) == [Violation(rule, detail, name(value))]


@pytest.mark.parametrize(
    "value",
    [
        "xinternal.example",
        "a.admin.corp.example.org",
        "*.a.corp.example",  # covers b.a.corp.example, never admin.corp.example
        "www.db.example.com",
        "a.legacy.example",
        "11.0.0.1",
        "fe80::1",
    ],
)
def test_deny_list_permits(value: str):
    assert order(DENY, value) == []


def test_deny_and_allow_both_report():
    both = policy(
        identifiers={
            "allow": {"suffixes": ["example.com"]},
            "deny": {"suffixes": ["a.example.com", "example.com"]},
        }
    )
    assert rules(both, "x.a.example.com", "other.org") == [
        "/identifiers/deny/suffixes/0",
        "/identifiers/deny/suffixes/1",
        "/identifiers/allow",
    ]


def test_wildcards_off():
    no_wildcards = policy(identifiers={"wildcards": False})
    assert order(no_wildcards, "*.example.com") == [
        Violation(
            "/identifiers/wildcards",
            "*.example.com is a wildcard and wildcards are not allowed",
            name("*.example.com"),
        )
    ]
    assert order(no_wildcards, "www.example.com", "192.0.2.1") == []


def test_max_per_order():
    three = policy(identifiers={"max_per_order": 3})
    assert order(three, "a.example", "b.example", "c.example") == []
    assert order(three, "a.example", "b.example", "c.example", "d.example") == [
        Violation("/identifiers/max_per_order", "the order has 4 identifiers, more than 3")
    ]


def test_every_violation_is_reported_one_per_identifier_per_rule():
    strict = policy(
        identifiers={
            "allow": {"suffixes": ["example.com"]},
            "deny": {"suffixes": ["bad.example.com"]},
            "wildcards": False,
            "max_per_order": 2,
        },
        rules=[cel_rule('!identifiers.exists(i, i.value.startsWith("test."))', message="no test")],
    )
    found = order(strict, "*.bad.example.com", "evil.org", "test.example.com")
    assert [(v.rule, v.name.value if v.name else None) for v in found] == [
        ("/identifiers/max_per_order", None),
        ("/identifiers/wildcards", "*.bad.example.com"),
        ("/identifiers/deny/suffixes/0", "*.bad.example.com"),
        ("/identifiers/allow", "evil.org"),
        ("/rules/0", None),
    ]


# -- challenges --------------------------------------------------------------------------------


def test_challenge_types_per_identifier_type():
    builtin = Policy.builtin()
    assert builtin.challenge_types(name("www.example.com")) == ("http-01", "dns-01", "tls-alpn-01")
    assert builtin.challenge_types(name("192.0.2.1")) == ("http-01", "tls-alpn-01")
    assert builtin.challenge_types(name("*.example.com")) == ("dns-01",)
    narrowed = policy(challenges={"dns": ["dns-01", "http-01"], "ip": ["tls-alpn-01"]})
    assert narrowed.challenge_types(name("www.example.com")) == ("dns-01", "http-01")
    assert narrowed.challenge_types(name("2001:db8::1")) == ("tls-alpn-01",)
    assert narrowed.challenge_types(name("*.example.com")) == ("dns-01",)


def test_a_wildcard_gets_dns_01_even_when_dns_names_do_not():
    http_only = policy(challenges={"dns": ["http-01"]})
    assert http_only.challenge_types(name("www.example.com")) == ("http-01",)
    assert http_only.challenge_types(name("*.example.com")) == ("dns-01",)


# -- keys --------------------------------------------------------------------------------------


def test_key_types_at_finalize():
    ec_only = policy(keys={"allowed": ["ec-p256", "ec-p384"]})
    assert finalize(ec_only, CsrKey("ec-p384")) == []
    assert finalize(ec_only, CsrKey("rsa-2048")) == [
        Violation(
            "/keys/allowed", "certificate key rsa-2048 is not allowed (allowed: ec-p256, ec-p384)"
        )
    ]


@cache
def public_keys() -> dict[str, Any]:
    return {
        "ec-p256": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "ec-p384": ec.generate_private_key(ec.SECP384R1()).public_key(),
        "ec-p521": ec.generate_private_key(ec.SECP521R1()).public_key(),
        "ec-secp256k1": ec.generate_private_key(ec.SECP256K1()).public_key(),
        "rsa-2048": rsa.generate_private_key(65537, 2048).public_key(),
        "rsa-3072": rsa.generate_private_key(65537, 3072).public_key(),
        "ed25519": ed25519.Ed25519PrivateKey.generate().public_key(),
        "ed448": ed448.Ed448PrivateKey.generate().public_key(),
        "dsa-2048": dsa.generate_private_key(2048).public_key(),
    }


@pytest.mark.parametrize(
    ("algorithm", "kind", "bits"),
    [
        ("ec-p256", "ec", 256),
        ("ec-p384", "ec", 384),
        ("ec-p521", "ec", 521),
        ("ec-secp256k1", "ec", 0),
        ("rsa-2048", "rsa", 2048),
        ("rsa-3072", "rsa", 3072),
        ("ed25519", "ed25519", 256),
        ("ed448", "ed448", 456),
        ("dsa-2048", "dsa", 2048),
    ],
)
def test_csr_key_of_a_public_key(algorithm: str, kind: str, bits: int):
    key = csr_key_of(public_keys()[algorithm])
    assert (key.algorithm, key.type, key.bits) == (algorithm, kind, bits)


def test_csr_key_of_something_else():
    assert csr_key_of(object()) == CsrKey("unknown")


# -- validity and profiles ---------------------------------------------------------------------


PROFILED = policy(
    validity={"default_days": 30, "max_days": 200},
    profiles={
        "default": {"issuer": None, "description": "Thirty days"},
        "long": {"issuer": "iss-rsa", "validity_days": 200, "description": "Long"},
        "tiny": {"validity_days": 1},
    },
    eab={"kid-ci": {"max_validity_days": 7}},
)


def test_validity_by_profile_default_and_caps():
    assert PROFILED.validity("default", None) == timedelta(days=30)
    assert PROFILED.validity("long", None) == timedelta(days=200)
    assert PROFILED.validity("tiny", None) == timedelta(days=1)
    assert PROFILED.validity("long", "kid-ci") == timedelta(days=7)
    assert PROFILED.validity("tiny", "kid-ci") == timedelta(days=1)
    assert PROFILED.validity("long", "kid-other") == timedelta(days=200)


def test_max_days_caps_the_default_when_default_days_is_absent():
    assert policy(validity={"max_days": 10}).validity("default", None) == timedelta(days=10)


def test_profiles_issuers_and_descriptions():
    assert PROFILED.profiles == {"default": "Thirty days", "long": "Long", "tiny": ""}
    assert PROFILED.issuer_for("long") == "iss-rsa"
    assert PROFILED.issuer_for("default") is None
    with pytest.raises(UnknownProfile):
        PROFILED.issuer_for("nope")
    with pytest.raises(UnknownProfile):
        PROFILED.validity("nope", None)


def test_an_unknown_profile_is_refused_at_order_and_finalize():
    facts = RequestFacts("a", (), None, None, profile="nope")
    assert order(PROFILED, "www.example.com", facts=facts) == [
        Violation("/profiles", 'unknown profile "nope" (offered: default, long, tiny)')
    ]
    assert [v.rule for v in finalize(PROFILED, EC256, facts=facts)] == ["/profiles"]
    long_facts = RequestFacts("a", (), None, None, profile="long")
    assert order(PROFILED, "www.example.com", facts=long_facts) == []


def test_renewal_window():
    assert policy(renewal={"window_start": 0.5, "window_end": 0.75}).renewal_window == (0.5, 0.75)
    assert policy(renewal={"window_end": 1}).renewal_window == (0.6667, 1)


# -- approvals ---------------------------------------------------------------------------------

APPROVALS = policy(
    approvals={
        "deadline_hours": 12,
        "rules": [
            {"id": "wildcards", "when": {"wildcard": True}},
            {"id": "payments", "when": {"suffixes": ["pay.example.com"]}},
            {"id": "apex", "when": {"names": ["example.com", "www.example.com"]}},
            {"id": "big", "when": {"cel": "size(identifiers) > 3"}},
            {"id": "ci", "when": {"cel": 'eab != null && eab.label == "ci robot"'}},
        ],
    }
)


@pytest.mark.parametrize(
    ("values", "facts", "expected"),
    [
        (("*.example.org",), FACTS, "/approvals/rules/0"),
        (("a.example.org", "*.pay.example.com"), FACTS, "/approvals/rules/0"),
        (("pay.example.com",), FACTS, "/approvals/rules/1"),
        (("api.pay.example.com",), FACTS, "/approvals/rules/1"),
        (("example.com",), FACTS, "/approvals/rules/2"),
        (
            ("a.example.org", "b.example.org", "c.example.org", "d.example.org"),
            FACTS,
            "/approvals/rules/3",
        ),
        (("a.example.org",), CI, "/approvals/rules/4"),
        (("a.example.org",), FACTS, None),
        (("xpay.example.com", "api.example.com", "192.0.2.1"), FACTS, None),
    ],
)
def test_approval_rules(values: tuple[str, ...], facts: RequestFacts, expected: str | None):
    found = APPROVALS.approval_rule([name(v) for v in values], facts, cel_time_limit=LIMIT)
    assert found == expected
    if found is not None:
        resolve(APPROVALS.document, found)
    assert APPROVALS.approval_deadline == timedelta(hours=12)


def test_an_approval_condition_that_fails_matches():
    failing = policy(
        approvals={"rules": [{"id": "broken", "when": {"cel": "identifiers[9].wildcard"}}]}
    )
    assert (
        failing.approval_rule([name("a.example")], FACTS, cel_time_limit=LIMIT)
        == "/approvals/rules/0"
    )


def test_an_approval_names_rule_matches_a_covering_wildcard():
    covering = policy(approvals={"rules": [{"id": "apex", "when": {"names": ["www.example.com"]}}]})
    assert covering.approval_rule([name("*.example.com")], FACTS, cel_time_limit=LIMIT) is not None


# -- accounts ----------------------------------------------------------------------------------


def test_require_contact():
    required = policy(accounts={"require_contact": True})
    assert account(required) == []
    assert account(required, RequestFacts("a", (), None, None)) == [
        Violation("/accounts/require_contact", "a contact is required")
    ]


@pytest.mark.parametrize(
    ("contact", "allowed"),
    [
        ("mailto:ops@example.com", True),
        ("mailto:ops@mail.example.com", True),
        ("MAILTO:Ops@EXAMPLE.COM", True),
        ("mailto:ops%40x@example.com", True),
        ("mailto:ops@example.com?subject=hi", True),
        ("mailto:ops@example.org", False),
        ("mailto:ops@xexample.com", False),
        ("mailto:ops@example.com,spy@evil.example", False),
        ("mailto:nobody", False),
        ("tel:+15555550100", True),  # contact_domains governs email addresses only
    ],
)
def test_contact_domains(contact: str, allowed: bool):
    domains = policy(accounts={"contact_domains": ["example.com"]})
    found = account(domains, RequestFacts("a", (contact,), None, None))
    expected = (
        []
        if allowed
        else [
            Violation(
                "/accounts/contact_domains",
                f'contact "{contact}" is not at an allowed domain (example.com)',
            )
        ]
    )
    assert found == expected


# -- CEL rules ---------------------------------------------------------------------------------

STAGED = policy(
    rules=[
        cel_rule(
            '!identifiers.exists(i, i.value.startsWith("test."))',
            "order",
            "no-test",
            message="test hosts are not certified here",
        ),
        cel_rule('csr_key.type == "ec" || identifiers.size() == 1', "finalize", "ec-for-sans"),
        cel_rule("account.contact.size() > 0 || eab != null", "account", "someone-to-call"),
        cel_rule('profile != "forbidden"', "order", "profile"),
    ]
)


def test_cel_rules_at_order():
    assert order(STAGED, "www.example.com") == []
    assert order(STAGED, "test.example.com") == [
        Violation("/rules/0", "test hosts are not certified here")
    ]


def test_cel_rules_at_finalize():
    assert finalize(STAGED, CsrKey("rsa-2048"), "a.example") == []
    assert finalize(STAGED, CsrKey("rsa-2048"), "a.example", "b.example") == [
        Violation("/rules/1", 'refused by rule "ec-for-sans"')
    ]
    assert finalize(STAGED, EC256, "test.example", "b.example") == []  # order rules do not run


def test_cel_rules_at_account():
    assert account(STAGED) == []
    assert account(STAGED, RequestFacts("a", (), None, None)) == [
        Violation("/rules/2", 'refused by rule "someone-to-call"')
    ]
    assert account(STAGED, RequestFacts("a", (), "kid", "label")) == []


def test_a_rule_that_errors_refuses():
    broken = policy(rules=[cel_rule("identifiers[3].wildcard", rule_id="broken")])
    (violation,) = order(broken, "a.example")
    assert violation.rule == "/rules/0"
    assert violation.detail.startswith('rule "broken" failed: invalid_argument')
    assert violation.detail.endswith("refused (fails closed)")


def test_a_rule_that_runs_away_refuses_within_the_limit():
    ten = "[1,2,3,4,5,6,7,8,9,10]"
    runaway = "true"
    for level in range(7):
        runaway = f"{ten}.all(v{level}, {runaway})"
    slow = policy(rules=[cel_rule(runaway, rule_id="slow"), cel_rule("true", rule_id="fast")])
    started = time.monotonic()
    found = slow.check_order([name("a.example")], FACTS, cel_time_limit=0.05)
    assert time.monotonic() - started < 0.05 + 0.5
    assert found == [
        Violation(
            "/rules/0", 'rule "slow" did not finish within the 0.05 s limit; refused (fails closed)'
        ),
        Violation(
            "/rules/1", 'rule "fast" did not finish within the 0.05 s limit; refused (fails closed)'
        ),
    ]


def test_uses_cel():
    assert STAGED.uses_cel
    assert policy(eab={"k": {"rules": [cel_rule("true")]}}).uses_cel
    assert policy(approvals={"rules": [{"id": "a", "when": {"cel": "true"}}]}).uses_cel
    assert not policy(approvals={"rules": [{"id": "a", "when": {"wildcard": True}}]}).uses_cel


# -- EAB narrowing -----------------------------------------------------------------------------

NARROWED = policy(
    identifiers={"deny": {"suffixes": ["internal.example.com"]}},
    keys={"allowed": ["ec-p256", "rsa-2048"]},
    eab={
        "kid-ci": {
            "identifiers": {
                "allow": {"suffixes": ["ci.example.com"]},
                "wildcards": False,
                "max_per_order": 2,
            },
            "keys": {"allowed": ["ec-p256"]},
            "max_validity_days": 7,
            "rules": [
                cel_rule('profile == "default"', "order", "default-only"),
                cel_rule("csr_key.bits >= 256", "finalize", "bits"),
            ],
        }
    },
)


def test_an_automation_key_is_limited_to_its_names():
    assert order(NARROWED, "build1.ci.example.com", "ci.example.com", facts=CI) == []
    assert order(NARROWED, "www.example.com", facts=CI) == [
        Violation(
            "/eab/kid-ci/identifiers/allow",
            'www.example.com matches no entry of the allow list (EAB key "kid-ci")',
            name("www.example.com"),
        )
    ]


def test_other_accounts_are_unaffected_by_an_eab_section():
    assert order(NARROWED, "www.example.com", "*.example.org", "a.b.c.example") == []
    other = RequestFacts("acct-2", (), "kid-other", "other")
    assert order(NARROWED, "www.example.com", "*.example.org", facts=other) == []
    assert finalize(NARROWED, CsrKey("rsa-2048")) == []
    assert NARROWED.validity("default", None) == timedelta(days=90)


def test_the_eab_section_only_adds_refusals():
    found = rules(
        NARROWED, "*.ci.example.com", "a.internal.example.com", "x.ci.example.com", facts=CI
    )
    assert found == [
        "/identifiers/deny/suffixes/0",  # the tenant's own rule still applies
        "/eab/kid-ci/identifiers/max_per_order",
        "/eab/kid-ci/identifiers/wildcards",
        "/eab/kid-ci/identifiers/allow",
    ]
    special = RequestFacts("acct-ci", (), "kid-ci", "ci", profile="special")
    assert rules(NARROWED, "a.ci.example.com", facts=special) == [
        "/profiles",
        "/eab/kid-ci/rules/0",
    ]


def test_the_eab_section_narrows_keys_and_validity():
    assert finalize(NARROWED, EC256, facts=CI) == []
    assert [v.rule for v in finalize(NARROWED, CsrKey("rsa-2048"), facts=CI)] == [
        "/eab/kid-ci/keys/allowed"
    ]
    assert [v.rule for v in finalize(NARROWED, CsrKey("rsa-4096"), facts=CI)] == [
        "/keys/allowed",
        "/eab/kid-ci/keys/allowed",
    ]
    assert NARROWED.validity("default", "kid-ci") == timedelta(days=7)


# -- properties --------------------------------------------------------------------------------

LABEL = st.sampled_from(["a", "b", "ab", "xn--bcher-kva", "a-b", "1"])
TOP = st.sampled_from(["a", "b", "ab"])  # never all-numeric
DNS = st.builds(
    lambda labels, top: ".".join([*labels, top]), st.lists(LABEL, min_size=1, max_size=3), TOP
)


@settings(max_examples=300, deadline=None)
@given(DNS, st.booleans(), DNS)
def test_a_name_at_or_below_a_denied_suffix_is_always_refused(
    base: str, wildcard: bool, suffix: str
):
    value = ("*." if wildcard else "") + base
    found = policy(identifiers={"deny": {"suffixes": [suffix]}}).check_order(
        [Name("dns", value)], FACTS, cel_time_limit=LIMIT
    )
    below = base == suffix or base.endswith("." + suffix)
    covered = wildcard and suffix.partition(".")[2] == base
    assert bool(found) == (below or covered)


@settings(max_examples=300, deadline=None)
@given(DNS, st.booleans(), st.lists(DNS, max_size=3))
def test_an_allow_list_permits_exactly_the_names_at_or_below_it(
    base: str, wildcard: bool, suffixes: list[str]
):
    value = ("*." if wildcard else "") + base
    found = policy(identifiers={"allow": {"suffixes": sorted(set(suffixes))}}).check_order(
        [Name("dns", value)], FACTS, cel_time_limit=LIMIT
    )
    allowed = any(base == s or base.endswith("." + s) for s in suffixes)
    assert bool(found) != allowed
