"""NamePolicy: every rule refuses and permits, and names itself (ARCHITECTURE.md §7)."""

from __future__ import annotations

import ipaddress

import pytest

from certplane.policy.identifiers import (
    RESERVED_SUFFIXES,
    Identifier,
    IdentifierType,
    NamePolicy,
    Rejection,
    RejectionKind,
)


def dns(value: str) -> Identifier:
    return Identifier(IdentifierType.DNS, value)


def ip(value: str) -> Identifier:
    return Identifier(IdentifierType.IP, value)


def refusal(policy: NamePolicy, ident: Identifier) -> str | None:
    """The detail of the single rejection for ``ident``, or None when it is permitted."""
    rejections = policy.check([ident])
    assert len(rejections) <= 1
    if not rejections:
        return None
    (rejection,) = rejections
    assert rejection.kind is RejectionKind.REJECTED
    assert rejection.identifier_json == ident.to_json()
    return rejection.detail


def test_reserved_names_are_data():
    assert RESERVED_SUFFIXES == (".invalid", ".arpa")


@pytest.mark.parametrize(
    ("ident", "detail"),
    [
        (dns("example.com"), None),
        (dns("*.example.com"), None),
        (dns("app.localhost"), None),
        (dns("*.app.localhost"), None),
        (dns("internal.example"), None),
        (dns("invalid.example"), None),
        (ip("192.0.2.1"), None),
        (ip("2001:db8::1"), None),
        (dns("foo.invalid"), "denied by rule reserved_suffixes[0] ('.invalid')"),
        (dns("*.foo.invalid"), "denied by rule reserved_suffixes[0] ('.invalid')"),
        (dns("1.2.0.192.in-addr.arpa"), "denied by rule reserved_suffixes[1] ('.arpa')"),
        (dns("*.ip6.arpa"), "denied by rule reserved_suffixes[1] ('.arpa')"),
    ],
)
def test_default_policy(ident: Identifier, detail: str | None):
    assert refusal(NamePolicy(), ident) == detail


DENY_SUBDOMAINS = NamePolicy(denied_suffixes=(".example.net",))
DENY_ZONE = NamePolicy(denied_suffixes=("example.org", "a.example.net"))


@pytest.mark.parametrize(
    ("policy", "ident", "detail"),
    [
        (
            DENY_SUBDOMAINS,
            dns("a.example.net"),
            "denied by rule denied_suffixes[0] ('.example.net')",
        ),
        (
            DENY_SUBDOMAINS,
            dns("b.a.example.net"),
            "denied by rule denied_suffixes[0] ('.example.net')",
        ),
        (
            DENY_SUBDOMAINS,
            dns("*.example.net"),
            "denied by rule denied_suffixes[0] ('.example.net')",
        ),
        (DENY_SUBDOMAINS, dns("example.net"), None),
        (DENY_SUBDOMAINS, dns("badexample.net"), None),
        (DENY_SUBDOMAINS, dns("example.net.example.com"), None),
        (DENY_ZONE, dns("example.org"), "denied by rule denied_suffixes[0] ('example.org')"),
        (DENY_ZONE, dns("www.example.org"), "denied by rule denied_suffixes[0] ('example.org')"),
        (DENY_ZONE, dns("*.example.org"), "denied by rule denied_suffixes[0] ('example.org')"),
        (DENY_ZONE, dns("notexample.org"), None),
        (DENY_ZONE, dns("a.example.net"), "denied by rule denied_suffixes[1] ('a.example.net')"),
        # *.example.net covers a.example.net itself, so a rule for that zone refuses it ...
        (DENY_ZONE, dns("*.example.net"), "denied by rule denied_suffixes[1] ('a.example.net')"),
        # ... while the zone's parent and deeper wildcards are unaffected.
        (DENY_ZONE, dns("example.net"), None),
        (DENY_ZONE, dns("*.b.example.net"), None),
    ],
)
def test_denied_suffixes(policy: NamePolicy, ident: Identifier, detail: str | None):
    assert refusal(policy, ident) == detail


def test_deny_rule_only_below_zone_does_not_touch_wildcard_above_it():
    policy = NamePolicy(denied_suffixes=(".a.example.net", "b.c.example.net"))
    assert refusal(policy, dns("*.example.net")) is None
    assert refusal(policy, dns("*.a.example.net")) is not None
    assert refusal(policy, dns("*.c.example.net")) is not None


ALLOW_BELOW = NamePolicy(allowed_suffixes=(".example.com",))
ALLOW_ZONE = NamePolicy(allowed_suffixes=("corp.example", "example.com"))
NO_MATCH = "denied by rule allowed_suffixes (no rule matches)"


@pytest.mark.parametrize(
    ("policy", "ident", "detail"),
    [
        (ALLOW_BELOW, dns("www.example.com"), None),
        (ALLOW_BELOW, dns("*.example.com"), None),
        (ALLOW_BELOW, dns("*.a.example.com"), None),
        (ALLOW_BELOW, dns("example.com"), NO_MATCH),
        (ALLOW_BELOW, dns("example.org"), NO_MATCH),
        (ALLOW_BELOW, dns("badexample.com"), NO_MATCH),
        (ALLOW_BELOW, dns("*.com.example"), NO_MATCH),
        (ALLOW_ZONE, dns("example.com"), None),
        (ALLOW_ZONE, dns("a.corp.example"), None),
        (ALLOW_ZONE, dns("*.corp.example"), None),
        (ALLOW_ZONE, dns("*.example"), NO_MATCH),
        (ALLOW_ZONE, ip("192.0.2.1"), None),
    ],
)
def test_allowed_suffixes(policy: NamePolicy, ident: Identifier, detail: str | None):
    assert refusal(policy, ident) == detail


def test_empty_allow_list_allows_no_name():
    assert refusal(NamePolicy(allowed_suffixes=()), dns("example.com")) == NO_MATCH


def test_reserved_names_win_over_an_allow_list():
    policy = NamePolicy(allowed_suffixes=("arpa",))
    assert refusal(policy, dns("x.in-addr.arpa")) == "denied by rule reserved_suffixes[1] ('.arpa')"


def test_deny_list_is_checked_before_allow_list():
    policy = NamePolicy(allowed_suffixes=("example.com",), denied_suffixes=(".example.com",))
    assert (
        refusal(policy, dns("a.example.com"))
        == "denied by rule denied_suffixes[0] ('.example.com')"
    )
    assert refusal(policy, dns("example.com")) is None


@pytest.mark.parametrize(
    ("ident", "detail"),
    [
        (dns("*.example.com"), "denied by rule allow_wildcards (false)"),
        (dns("example.com"), None),
        (dns("www.example.com"), None),
    ],
)
def test_allow_wildcards(ident: Identifier, detail: str | None):
    assert refusal(NamePolicy(allow_wildcards=False), ident) == detail


NETS = NamePolicy(
    allowed_ip_networks=(
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
)


@pytest.mark.parametrize(
    ("policy", "ident", "detail"),
    [
        (NamePolicy(allow_ip=False), ip("192.0.2.1"), "denied by rule allow_ip (false)"),
        (NamePolicy(allow_ip=False), dns("example.com"), None),
        (NETS, ip("192.0.2.200"), None),
        (NETS, ip("2001:db8::1"), None),
        (
            NETS,
            ip("198.51.100.1"),
            "denied by rule allowed_ip_networks (no network contains the address)",
        ),
        (
            NETS,
            ip("2001:db9::1"),
            "denied by rule allowed_ip_networks (no network contains the address)",
        ),
        (
            NamePolicy(allowed_ip_networks=()),
            ip("192.0.2.1"),
            "denied by rule allowed_ip_networks (no network contains the address)",
        ),
    ],
)
def test_ip_rules(policy: NamePolicy, ident: Identifier, detail: str | None):
    assert refusal(policy, ident) == detail


def test_check_reports_every_refused_identifier():
    policy = NamePolicy(denied_suffixes=("example.net",), allow_ip=False)
    idents = [dns("ok.example.com"), dns("a.example.net"), ip("192.0.2.1"), dns("x.invalid")]
    assert policy.check(idents) == [
        Rejection(
            idents[1].to_json(),
            RejectionKind.REJECTED,
            "denied by rule denied_suffixes[0] ('example.net')",
        ),
        Rejection(idents[2].to_json(), RejectionKind.REJECTED, "denied by rule allow_ip (false)"),
        Rejection(
            idents[3].to_json(),
            RejectionKind.REJECTED,
            "denied by rule reserved_suffixes[0] ('.invalid')",
        ),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"denied_suffixes": ("Example.com",)}, r"denied_suffixes\[0\] \('Example.com'\)"),
        ({"denied_suffixes": ("ok.example", "a..b")}, r"denied_suffixes\[1\]"),
        ({"allowed_suffixes": ("*.example.com",)}, r"allowed_suffixes\[0\]"),
        ({"allowed_suffixes": (".",)}, r"allowed_suffixes\[0\]"),
        ({"allowed_suffixes": ("exämple.com",)}, r"allowed_suffixes\[0\]"),
    ],
)
def test_bad_rules_fail_fast(kwargs: dict[str, tuple[str, ...]], message: str):
    with pytest.raises(ValueError, match=message):
        NamePolicy(**kwargs)  # type: ignore[arg-type]
