"""parse_identifiers: every well-formedness rule, accepted and refused (RFC 8555 §7.4, RFC 8738)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certplane.policy.identifiers import (
    Identifier,
    IdentifierRejections,
    IdentifierType,
    Rejection,
    RejectionKind,
    parse_identifiers,
)

DNS, IP = IdentifierType.DNS, IdentifierType.IP
MALFORMED, UNSUPPORTED = RejectionKind.MALFORMED, RejectionKind.UNSUPPORTED
LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, LABEL_63, LABEL_63, "a" * 57, "com"])  # 63*3 + 57 + 3 + 4 dots
assert len(NAME_253) == 253


def rejections_for(raw: object, **kwargs: int) -> tuple[Rejection, ...]:
    with pytest.raises(IdentifierRejections) as excinfo:
        parse_identifiers(raw, **kwargs)
    return excinfo.value.rejections


def only_rejection(raw: object) -> Rejection:
    (rejection,) = rejections_for(raw)
    return rejection


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("dns", "example.com", Identifier(DNS, "example.com")),
        ("dns", "Example.COM", Identifier(DNS, "example.com")),
        ("dns", "example.com.", Identifier(DNS, "example.com")),
        ("dns", "*.example.com", Identifier(DNS, "*.example.com")),
        ("dns", "*.Example.com.", Identifier(DNS, "*.example.com")),
        ("dns", "a-b.example.com", Identifier(DNS, "a-b.example.com")),
        ("dns", "1.example.com", Identifier(DNS, "1.example.com")),
        ("dns", "123.example", Identifier(DNS, "123.example")),
        ("dns", "xn--bcher-kva.example", Identifier(DNS, "xn--bcher-kva.example")),
        ("dns", "XN--BCHER-KVA.example", Identifier(DNS, "xn--bcher-kva.example")),
        ("dns", "shop.xn--p1ai", Identifier(DNS, "shop.xn--p1ai")),
        ("dns", "app.localhost", Identifier(DNS, "app.localhost")),
        ("dns", f"{LABEL_63}.com", Identifier(DNS, f"{LABEL_63}.com")),
        ("dns", NAME_253, Identifier(DNS, NAME_253)),
        ("dns", NAME_253 + ".", Identifier(DNS, NAME_253)),
        ("ip", "192.0.2.1", Identifier(IP, "192.0.2.1")),
        ("ip", "2001:DB8:0:0:0:0:0:1", Identifier(IP, "2001:db8::1")),
        ("ip", "::1", Identifier(IP, "::1")),
        ("ip", "fe80::1", Identifier(IP, "fe80::1")),
    ],
)
def test_well_formed_identifiers_are_normalised(type_: str, value: str, expected: Identifier):
    assert parse_identifiers([{"type": type_, "value": value}]) == [expected]


@pytest.mark.parametrize(
    ("value", "detail_part"),
    [
        ("exämple.com", "A-labels"),
        ("bücher.example", "A-labels"),
        ("", "empty label"),
        ("example..com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        (f"{LABEL_63}a.com", "longer than 63"),
        ("a" + NAME_253, "longer than 253"),
        ("-a.example.com", "hyphen"),
        ("a-.example.com", "hyphen"),
        ("ab--c.example.com", "positions 3-4"),
        ("xn--a.example.com", "not a valid IDNA A-label"),
        ("xn--example-.com", "hyphen"),
        ("xn--ls8h.example", "not a valid IDNA A-label"),
        ("xn--abc.example", "not a valid IDNA A-label"),
        ("xn--0.example", "not a valid IDNA A-label"),
        ("a_b.example.com", "letters, digits and hyphen"),
        ("a b.example.com", "letters, digits and hyphen"),
        ("example.com\n", "letters, digits and hyphen"),
        ("example.com/", "letters, digits and hyphen"),
        ("example.123", "all-numeric top-level"),
        ("localhost", "at least two labels"),
        ("com", "at least two labels"),
        ("*", "at least two labels"),
        ("*.", "at least two labels"),
        ("*.com", "at least two labels"),
        ("a.*.example.com", "wildcard"),
        ("*a.example.com", "wildcard"),
        ("**.example.com", "wildcard"),
        ("*.*.example.com", "wildcard"),
        ("example.*", "wildcard"),
        ("192.0.2.1", "type 'ip'"),
        ("192.0.2.1.", "type 'ip'"),
        ("::1", "type 'ip'"),
    ],
)
def test_malformed_dns_names(value: str, detail_part: str):
    rejection = only_rejection([{"type": "dns", "value": value}])
    assert rejection.kind is MALFORMED
    assert detail_part in rejection.detail
    assert rejection.identifier_json == {"type": "dns", "value": value}


@pytest.mark.parametrize(
    ("value", "detail_part"),
    [
        ("fe80::1%eth0", "zone"),
        ("fe80::1%25eth0", "zone"),
        ("192.0.2", "not a valid"),
        ("192.0.02.1", "not a valid"),
        ("192.0.2.256", "not a valid"),
        ("192.0.2.1/32", "not a valid"),
        (" 192.0.2.1", "not a valid"),
        ("[::1]", "not a valid"),
        ("example.com", "not a valid"),
        ("", "not a valid"),
        ("::ffff:192.0.2.1", "IPv4-mapped"),
    ],
)
def test_malformed_ip_addresses(value: str, detail_part: str):
    rejection = only_rejection([{"type": "ip", "value": value}])
    assert rejection.kind is MALFORMED
    assert detail_part in rejection.detail


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (None, "identifiers must be an array"),
        ({"type": "dns", "value": "example.com"}, "identifiers must be an array"),
        ("example.com", "identifiers must be an array"),
        ([], "identifiers must not be empty"),
    ],
)
def test_array_level_problems(raw: object, detail: str):
    assert only_rejection(raw) == Rejection(None, MALFORMED, detail)


def test_too_many_identifiers():
    raw = [{"type": "dns", "value": f"n{i}.example.com"} for i in range(4)]
    assert len(parse_identifiers(raw, max_identifiers=4)) == 4
    rejection = only_rejection_with(raw, max_identifiers=3)
    assert rejection == Rejection(None, MALFORMED, "too many identifiers: 4 > 3")


def only_rejection_with(raw: object, **kwargs: int) -> Rejection:
    (rejection,) = rejections_for(raw, **kwargs)
    return rejection


def test_default_limit_is_100():
    raw = [{"type": "dns", "value": f"n{i}.example.com"} for i in range(101)]
    assert only_rejection(raw).detail == "too many identifiers: 101 > 100"


@pytest.mark.parametrize(
    ("item", "echo", "detail"),
    [
        ("example.com", None, "identifiers[0] must be an object"),
        (["dns", "example.com"], None, "identifiers[0] must be an object"),
        ({"type": "dns"}, None, "must have exactly the members 'type' and 'value'"),
        ({"value": "example.com"}, None, "must have exactly the members 'type' and 'value'"),
        (
            {"type": "dns", "value": "example.com", "extra": 1},
            {"type": "dns", "value": "example.com"},
            "must have exactly the members 'type' and 'value'",
        ),
        ({"type": 1, "value": "example.com"}, None, "'type' and 'value' must be strings"),
        ({"type": "dns", "value": ["example.com"]}, None, "'type' and 'value' must be strings"),
        ({"type": "dns", "value": None}, None, "'type' and 'value' must be strings"),
    ],
)
def test_malformed_identifier_objects(item: object, echo: dict[str, str] | None, detail: str):
    rejection = only_rejection([item])
    assert rejection.kind is MALFORMED
    assert rejection.identifier_json == echo
    assert detail in rejection.detail


@pytest.mark.parametrize("type_", ["email", "DNS", "Ip", "", "permanent-identifier"])
def test_unsupported_types(type_: str):
    rejection = only_rejection([{"type": type_, "value": "example.com"}])
    assert rejection.kind is UNSUPPORTED
    assert rejection.identifier_json == {"type": type_, "value": "example.com"}


def test_duplicates_after_normalisation_each_rejected():
    raw = [
        {"type": "dns", "value": "example.com"},
        {"type": "dns", "value": "EXAMPLE.com."},
        {"type": "ip", "value": "2001:db8::1"},
        {"type": "dns", "value": "example.com"},
        {"type": "ip", "value": "2001:DB8:0::1"},
    ]
    assert rejections_for(raw) == (
        Rejection(raw[1], MALFORMED, "duplicate of identifiers[0] after normalisation"),
        Rejection(raw[3], MALFORMED, "duplicate of identifiers[0] after normalisation"),
        Rejection(raw[4], MALFORMED, "duplicate of identifiers[2] after normalisation"),
    )


def test_same_name_as_dns_and_wildcard_is_not_a_duplicate():
    raw = [{"type": "dns", "value": "example.com"}, {"type": "dns", "value": "*.example.com"}]
    assert [i.value for i in parse_identifiers(raw)] == ["example.com", "*.example.com"]


def test_every_problem_is_reported_in_order():
    raw = [
        {"type": "dns", "value": "ok.example.com"},
        {"type": "dns", "value": "bad..example.com"},
        {"type": "email", "value": "a@example.com"},
        42,
        {"type": "ip", "value": "999.0.0.1"},
    ]
    kinds = [(r.kind, r.identifier_json) for r in rejections_for(raw)]
    assert kinds == [
        (MALFORMED, raw[1]),
        (UNSUPPORTED, raw[2]),
        (MALFORMED, None),
        (MALFORMED, raw[4]),
    ]


def test_client_order_is_kept():
    raw = [{"type": "dns", "value": "b.example"}, {"type": "ip", "value": "192.0.2.1"}]
    raw.append({"type": "dns", "value": "a.example"})
    assert [i.value for i in parse_identifiers(raw)] == ["b.example", "192.0.2.1", "a.example"]


def test_rejections_exception_message_counts():
    with pytest.raises(IdentifierRejections, match="2 identifier problem"):
        parse_identifiers([{"type": "x", "value": "y"}, {"type": "dns", "value": ""}])


# -- properties --------------------------------------------------------------------------------

_LABEL = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)
_DNS_VALUES = st.builds(
    lambda wildcard, labels, tld, dot: (
        ("*." if wildcard else "") + ".".join([*labels, tld]) + ("." if dot else "")
    ),
    st.booleans(),
    st.lists(_LABEL, min_size=1, max_size=4),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}", fullmatch=True),
    st.booleans(),
)
_IP_VALUES = st.ip_addresses().map(str)
_VALUES = st.one_of(_DNS_VALUES, _IP_VALUES, st.text(max_size=30))
_ITEMS = st.fixed_dictionaries({"type": st.sampled_from(["dns", "ip"]), "value": _VALUES})


@settings(max_examples=150, deadline=None)
@given(st.lists(_ITEMS, min_size=1, max_size=8))
def test_parse_is_idempotent_on_its_own_output(raw: list[dict[str, str]]):
    try:
        first = parse_identifiers(raw)
    except IdentifierRejections as rejected:
        assert rejected.rejections
        return
    assert parse_identifiers([ident.to_json() for ident in first]) == first


@settings(max_examples=75, deadline=None)
@given(st.lists(_DNS_VALUES, min_size=1, max_size=5, unique_by=str.lower))
def test_generated_ldh_names_are_accepted(values: list[str]):
    raw = [{"type": "dns", "value": value} for value in values]
    try:
        parsed = parse_identifiers(raw)
    except IdentifierRejections as rejected:  # only trailing-dot twins or R-LDH labels fail
        assert all("--" in r.detail or "duplicate" in r.detail for r in rejected.rejections)
        return
    assert all(ident.value == ident.value.lower() for ident in parsed)
    assert all(not ident.value.endswith(".") for ident in parsed)
