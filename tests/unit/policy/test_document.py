"""Policy documents: the published schema, parsing, every validation issue at its pointer, and
comparing versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from certplane.policy.document import (
    KEY_ALGORITHMS,
    MAX_DOCUMENT_BYTES,
    POLICY_SCHEMA,
    SCHEMA_NAME,
    Policy,
    PolicyInvalid,
    PolicyIssue,
    diff_documents,
    parse_policy,
    pointer,
    policy_from_json,
    sensitive_changes,
    write_schema,
)

SCHEMA_FILE = Path(__file__).parents[3] / "docs" / "policy.schema.json"

EXAMPLE_YAML = """\
schema: certplane/policy/v1
identifiers:
  allow:
    suffixes: [corp.example]
    names: [www.example.com, "*.x.example"]
    ip_ranges: [192.0.2.0/24, "2001:db8::/32"]
  deny:
    suffixes: [internal.corp.example]
  wildcards: true
  max_per_order: 50
challenges:
  dns: [dns-01, http-01]
  ip: [http-01]
  wildcard: [dns-01]
keys:
  allowed: [ec-p256, rsa-2048]
validity: {default_days: 30, max_days: 90}
profiles:
  default: {issuer: null, description: "Thirty days"}
  long: {issuer: iss-rsa, validity_days: 90, description: "Ninety days"}
approvals:
  deadline_hours: 24
  rules:
    - id: wildcards-need-approval
      when: {wildcard: true}
      description: "A wildcard needs a second pair of eyes"
renewal: {window_start: 0.5, window_end: 0.8}
accounts:
  require_contact: true
  contact_domains: [example.com]
rules:
  - id: no-test-hosts
    at: order
    expression: '!identifiers.exists(i, i.value.startsWith("test."))'
    message: "test hosts are not certified here"
eab:
  kid-123:
    identifiers: {allow: {suffixes: [ci.corp.example]}}
    keys: {allowed: [ec-p256]}
    max_validity_days: 7
"""


def doc(**sections: Any) -> dict[str, Any]:
    return {"schema": SCHEMA_NAME, **sections}


def issues_of(document: Any) -> list[PolicyIssue]:
    with pytest.raises(PolicyInvalid) as excinfo:
        policy_from_json(document)
    return excinfo.value.issues


def issues_of_text(text: str | bytes, media_type: str | None = None) -> list[PolicyIssue]:
    with pytest.raises(PolicyInvalid) as excinfo:
        parse_policy(text, media_type=media_type)
    return excinfo.value.issues


def only_issue(document: Any) -> PolicyIssue:
    (issue,) = issues_of(document)
    return issue


# -- the published schema ----------------------------------------------------------------------


def test_the_committed_schema_file_is_the_schema():
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == POLICY_SCHEMA


def test_write_schema_writes_what_is_committed(tmp_path: Path):
    write_schema(tmp_path / "schema.json")
    assert (tmp_path / "schema.json").read_text(encoding="utf-8") == SCHEMA_FILE.read_text(
        encoding="utf-8"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(POLICY_SCHEMA)
    assert POLICY_SCHEMA["$id"] == "https://certplane.dev/schemas/policy-v1.json"
    assert POLICY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _object_schemas(schema: Any, at: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append((at, schema))
        for key, value in schema.items():
            found += _object_schemas(value, f"{at}/{key}")
    return found


def test_every_object_is_closed_and_every_field_described():
    for at, schema in _object_schemas(POLICY_SCHEMA):
        closed = schema["additionalProperties"]
        assert closed is False or set(closed) == {"$ref"}, at  # a map: its values are closed
        assert schema.get("description"), at
        for name, field in schema.get("properties", {}).items():
            assert field.get("description"), f"{at}/properties/{name}"


def test_the_example_and_every_normalised_document_validate_against_the_schema():
    policy = parse_policy(EXAMPLE_YAML)
    validator = Draft202012Validator(POLICY_SCHEMA)
    validator.validate(policy.document)
    validator.validate(Policy.builtin().document)


# -- parsing -----------------------------------------------------------------------------------


def test_yaml_and_json_sources_give_the_same_document():
    from_yaml = parse_policy(EXAMPLE_YAML).document
    as_json = json.dumps(from_yaml)
    assert parse_policy(as_json).document == from_yaml
    assert parse_policy(as_json.encode(), media_type="application/json").document == from_yaml
    assert parse_policy(EXAMPLE_YAML, media_type="application/yaml").document == from_yaml
    assert parse_policy(EXAMPLE_YAML, media_type="text/yaml; charset=utf-8").document == from_yaml
    assert parse_policy(as_json, media_type="application/x-yaml").document == from_yaml


def test_normalising_fills_defaults_and_is_a_fixed_point():
    document = parse_policy("schema: certplane/policy/v1\nvalidity: {max_days: 30}\n").document
    assert document["validity"] == {"max_days": 30, "default_days": 30}
    assert document["identifiers"] == {"wildcards": True, "max_per_order": 100}
    assert document["profiles"]["default"]["issuer"] is None
    assert policy_from_json(document).document == document


def test_the_document_is_a_copy():
    policy = Policy.builtin()
    policy.document["identifiers"]["wildcards"] = False
    assert policy.document["identifiers"]["wildcards"] is True


@pytest.mark.parametrize(
    ("source", "media_type", "message"),
    [
        ("schema: [", None, "YAML error at line 1, column 10"),
        ('{"schema": ', None, "JSON error at line 1, column 12"),
        ("schema: x", "application/json", "JSON error at line 1, column 1"),
        ("a: &anchor 1\nb: *anchor\n", None, "line 1, column 4: anchors and aliases"),
        ("a: [1]\nb: *nothing\n", None, "line 2, column 4: anchors and aliases"),
        ("schema: x\nwhen: 2024-01-01\n", None, "line 2, column 7: timestamp values are not JSON"),
        ("data: !!binary aGk=\n", None, "line 1, column 7: binary values are not JSON"),
        ("s: !!set {a}\n", None, "set values are not JSON"),
        ("x: .inf\n", None, "line 1, column 4: infinite and NaN"),
        ("1: one\n", None, "line 1, column 1: mapping keys must be strings"),
        ("schema: a\nschema: b\n", None, "line 2, column 1: duplicate key 'schema'"),
        ('{"schema": "a", "schema": "b"}', None, "duplicate member 'schema'"),
        ('{"x": NaN}', None, "NaN is not a JSON number"),
        ("a: !python/object:os.system x\n", None, "YAML error at line 1, column 4"),
        ("[" * 40 + "]" * 40, None, "nesting deeper than 16 levels"),
        ("schema: x", "text/plain", "unsupported media type 'text/plain'"),
        ("---\nschema: a\n---\nschema: b\n", None, "expected a single document"),
    ],
)
def test_unreadable_sources_are_one_issue_at_the_root(
    source: str, media_type: str | None, message: str
):
    (issue,) = issues_of_text(source, media_type)
    assert issue.pointer == ""
    assert message in issue.message


def test_a_huge_document_is_refused_before_parsing():
    huge = "schema: certplane/policy/v1\n#" + "x" * MAX_DOCUMENT_BYTES
    (issue,) = issues_of_text(huge)
    assert issue == PolicyIssue("", "the document is larger than 64 KiB")
    names = [f"host{n}.example.com" for n in range(4000)]
    (issue,) = issues_of(doc(identifiers={"deny": {"names": names}}))
    assert issue == PolicyIssue("", "the document is larger than 64 KiB as JSON")


def test_a_stored_document_always_loads_again():
    """The limit applies to the normalised document, which normalising leaves unchanged."""

    def source(count: int) -> str:
        names = [f"h{n:05}.example.com" for n in range(count)]
        return json.dumps(doc(identifiers={"deny": {"names": names}}), separators=(",", ":"))

    stored = parse_policy(source(3090)).document
    assert len(json.dumps(stored, separators=(",", ":"))) > MAX_DOCUMENT_BYTES - 100
    assert policy_from_json(stored).document == stored
    assert len(source(3100)) < MAX_DOCUMENT_BYTES
    assert issues_of_text(source(3100)) == [
        PolicyIssue("", "the document is larger than 64 KiB as JSON")
    ]


def test_a_billion_laughs_is_refused_at_the_first_anchor():
    laughs = 'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n'
    (issue,) = issues_of_text(laughs)
    assert "anchors and aliases are not allowed" in issue.message


def test_deep_json_nesting_is_refused_where_it_gets_too_deep():
    (issue,) = issues_of_text('{"a":' * 40 + "1" + "}" * 40)
    assert issue == PolicyIssue("/a" * 17, "nesting deeper than 16 levels")


def test_not_utf8_is_refused():
    assert issues_of_text(b"schema: \xff\n") == [PolicyIssue("", "the document is not UTF-8 text")]


def test_non_json_values_in_a_dict_are_refused_at_their_pointer():
    issues = issues_of(doc(identifiers={"deny": {"names": [b"x"]}}, extra={1: 2}, nan=float("nan")))
    assert [i.pointer for i in issues] == ["/extra", "/identifiers/deny/names/0", "/nan"]


# -- validation: schema ------------------------------------------------------------------------

ID, KID = "'^[a-z0-9][a-z0-9-]{0,62}$'", "'^[A-Za-z0-9_-]{1,64}$'"


@pytest.mark.parametrize(
    ("document", "at", "message"),
    [
        ({}, "", "'schema' is a required property"),
        ([], "", "[] is not of type 'object'"),
        ({"schema": "certplane/policy/v2"}, "/schema", "'certplane/policy/v1' was expected"),
        (doc(identifer={}), "/identifer", "unknown member"),
        (doc(identifiers={"allow": {"suffix": []}}), "/identifiers/allow/suffix", "unknown member"),
        (
            doc(identifiers={"max_per_order": 101}),
            "/identifiers/max_per_order",
            "101 is greater than the maximum of 100",
        ),
        (
            doc(identifiers={"wildcards": "no"}),
            "/identifiers/wildcards",
            "'no' is not of type 'boolean'",
        ),
        (
            doc(challenges={"ip": ["dns-01"]}),
            "/challenges/ip/0",
            "'dns-01' is not one of ['http-01', 'tls-alpn-01']",
        ),
        (
            doc(challenges={"wildcard": ["http-01"]}),
            "/challenges/wildcard/0",
            "'http-01' is not one of ['dns-01']",
        ),
        (doc(challenges={"wildcard": []}), "/challenges/wildcard", "[] should be non-empty"),
        (
            doc(keys={"allowed": ["rsa-1024"]}),
            "/keys/allowed/0",
            f"'rsa-1024' is not one of {list(KEY_ALGORITHMS)}",
        ),
        (
            doc(keys={"allowed": ["ec-p256", "ec-p256"]}),
            "/keys/allowed",
            "['ec-p256', 'ec-p256'] has non-unique elements",
        ),
        (doc(validity={"max_days": 0}), "/validity/max_days", "0 is less than the minimum of 1"),
        (doc(profiles={"short": {}}), "/profiles", "'default' is a required property"),
        (
            doc(profiles={"default": {}, "Short": {}}),
            "/profiles/Short",
            f"invalid name: 'Short' does not match {ID}",
        ),
        (
            doc(profiles={"default": {"issuer": ""}}),
            "/profiles/default/issuer",
            "'' should be non-empty",
        ),
        (
            doc(approvals={"deadline_hours": 721}),
            "/approvals/deadline_hours",
            "721 is greater than the maximum of 720",
        ),
        (
            doc(approvals={"rules": [{"id": "Bad id", "when": {"wildcard": True}}]}),
            "/approvals/rules/0/id",
            f"'Bad id' does not match {ID}",
        ),
        (
            doc(approvals={"rules": [{"id": "w", "when": {"wildcard": False}}]}),
            "/approvals/rules/0/when/wildcard",
            "True was expected",
        ),
        (
            doc(renewal={"window_start": 0}),
            "/renewal/window_start",
            "0 is less than or equal to the minimum of 0",
        ),
        (
            doc(rules=[{"id": "r", "at": "issue", "expression": "true"}]),
            "/rules/0/at",
            "'issue' is not one of ['order', 'finalize', 'account']",
        ),
        (
            doc(rules=[{"id": "r", "at": "order"}]),
            "/rules/0",
            "'expression' is a required property",
        ),
        (doc(eab={"kid/1": {}}), "/eab/kid~11", f"invalid name: 'kid/1' does not match {KID}"),
        (doc(eab={"k": {"accounts": {}}}), "/eab/k/accounts", "unknown member"),
        (
            doc(eab={"k": {"max_validity_days": 3651}}),
            "/eab/k/max_validity_days",
            "3651 is greater than the maximum of 3650",
        ),
    ],
)
def test_schema_errors_are_at_their_pointer(document: Any, at: str, message: str):
    assert only_issue(document) == PolicyIssue(at, message)


# -- validation: meaning -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "at", "message"),
    [
        (
            doc(identifiers={"allow": {"ip_ranges": ["192.0.2.0/24", "192.0.2.1/24"]}}),
            "/identifiers/allow/ip_ranges/1",
            "has host bits set",
        ),
        (
            doc(identifiers={"deny": {"ip_ranges": ["2001:db8::/129"]}}),
            "/identifiers/deny/ip_ranges/0",
            "not an IP network",
        ),
        (
            doc(identifiers={"deny": {"ip_ranges": ["example.com"]}}),
            "/identifiers/deny/ip_ranges/0",
            "not an IP network",
        ),
        (
            doc(identifiers={"allow": {"suffixes": ["Corp.example"]}}),
            "/identifiers/allow/suffixes/0",
            "must be lowercase, without a trailing dot",
        ),
        (
            doc(identifiers={"allow": {"suffixes": ["corp.example."]}}),
            "/identifiers/allow/suffixes/0",
            "must be lowercase",
        ),
        (
            doc(identifiers={"allow": {"suffixes": ["*.corp.example"]}}),
            "/identifiers/allow/suffixes/0",
            "a suffix cannot hold a wildcard",
        ),
        (
            doc(identifiers={"deny": {"suffixes": ["bad_label.example"]}}),
            "/identifiers/deny/suffixes/0",
            "other than letters, digits and hyphen",
        ),
        (
            doc(identifiers={"deny": {"suffixes": ["-x.example"]}}),
            "/identifiers/deny/suffixes/0",
            "starts or ends with a hyphen",
        ),
        (
            doc(identifiers={"deny": {"suffixes": ["xn--zz.example"]}}),
            "/identifiers/deny/suffixes/0",
            "not a valid IDNA A-label",
        ),
        (
            doc(identifiers={"deny": {"suffixes": ["bücher.example"]}}),
            "/identifiers/deny/suffixes/0",
            "A-labels",
        ),
        (
            doc(identifiers={"deny": {"names": ["a..example"]}}),
            "/identifiers/deny/names/0",
            "empty label",
        ),
        (
            doc(identifiers={"deny": {"names": ["192.0.2.1"]}}),
            "/identifiers/deny/names/0",
            "use type 'ip'",
        ),
        (
            doc(identifiers={"deny": {"names": ["x.*.example"]}}),
            "/identifiers/deny/names/0",
            "whole leftmost label",
        ),
        (
            doc(identifiers={"deny": {"names": ["localhost"]}}),
            "/identifiers/deny/names/0",
            "at least two labels",
        ),
        (
            doc(accounts={"contact_domains": ["Example.com"]}),
            "/accounts/contact_domains/0",
            "must be lowercase",
        ),
        (
            doc(eab={"k": {"identifiers": {"allow": {"ip_ranges": ["10.0.0.1/8"]}}}}),
            "/eab/k/identifiers/allow/ip_ranges/0",
            "host bits",
        ),
        (
            doc(
                rules=[
                    {"id": "a", "at": "order", "expression": "true"},
                    {"id": "a", "at": "finalize", "expression": "true"},
                ]
            ),
            "/rules/1/id",
            "duplicate id 'a' (/rules/0)",
        ),
        (
            doc(eab={"k": {"rules": [{"id": "a", "at": "order", "expression": "true"}] * 2}}),
            "/eab/k/rules/1/id",
            "duplicate id 'a' (/eab/k/rules/0)",
        ),
        (
            doc(approvals={"rules": [{"id": "a", "when": {"wildcard": True}}] * 2}),
            "/approvals/rules/1/id",
            "duplicate id 'a'",
        ),
        (
            doc(rules=[{"id": "a", "at": "order", "expression": "profile =="}]),
            "/rules/0/expression",
            "CEL does not compile: syntax error at line 1, column 9",
        ),
        (
            doc(rules=[{"id": "a", "at": "order", "expression": "profil == 'x'"}]),
            "/rules/0/expression",
            "unknown variable 'profil' at line 1, column 1",
        ),
        (
            doc(eab={"k": {"rules": [{"id": "a", "at": "order", "expression": "x("}]}}),
            "/eab/k/rules/0/expression",
            "CEL does not compile",
        ),
        (
            doc(approvals={"rules": [{"id": "a", "when": {"cel": "1 +"}}]}),
            "/approvals/rules/0/when/cel",
            "line 1, column 3",
        ),
        (
            doc(approvals={"rules": [{"id": "a", "when": {}}]}),
            "/approvals/rules/0/when",
            "needs exactly one condition, found: none",
        ),
        (
            doc(
                approvals={
                    "rules": [{"id": "a", "when": {"wildcard": True, "names": ["a.example"]}}]
                }
            ),
            "/approvals/rules/0/when",
            "found: wildcard, names",
        ),
        (
            doc(approvals={"rules": [{"id": "a", "when": {"suffixes": ["A.example"]}}]}),
            "/approvals/rules/0/when/suffixes/0",
            "lowercase",
        ),
        (
            doc(approvals={"rules": [{"id": "a", "when": {"names": ["a_b.example"]}}]}),
            "/approvals/rules/0/when/names/0",
            "letters, digits",
        ),
        (
            doc(validity={"default_days": 120, "max_days": 90}),
            "/validity/default_days",
            "is above max_days (90)",
        ),
        (
            doc(validity={"default_days": 120}),
            "/validity/default_days",
            "is above max_days (90, the default)",
        ),
        (
            doc(validity={"max_days": 30}, profiles={"default": {"validity_days": 31}}),
            "/profiles/default/validity_days",
            "is above validity.max_days (30)",
        ),
        (
            doc(renewal={"window_start": 0.8, "window_end": 0.8}),
            "/renewal/window_start",
            "must be below window_end",
        ),
        (
            doc(renewal={"window_end": 0.5}),
            "/renewal/window_end",
            "window_start (0.6667) must be below window_end (0.5)",
        ),
    ],
)
def test_semantic_errors_are_at_their_pointer(document: Any, at: str, message: str):
    issue = only_issue(document)
    assert issue.pointer == at
    assert message in issue.message


def test_every_issue_is_reported_at_once_sorted_by_pointer():
    source = """\
schema: certplane/policy/v1
identifiers:
  allow:
    ip_ranges: [192.0.2.0/24, 192.0.2.1/24]
    suffixes: [Corp.example]
  allo: {}
validity: {default_days: 100, max_days: 90}
renewal: {window_start: 0.9, window_end: 0.5}
rules:
  - {id: a, at: order, expression: "1 +"}
  - {id: a, at: order, expression: "true"}
approvals:
  rules:
    - {id: r, when: {}}
profiles:
  default: {validity_days: 120}
  Bad: {}
"""
    issues = issues_of_text(source)
    assert [i.pointer for i in issues] == [
        "/approvals/rules/0/when",
        "/identifiers/allo",
        "/identifiers/allow/ip_ranges/1",
        "/identifiers/allow/suffixes/0",
        "/profiles/Bad",
        "/profiles/default/validity_days",
        "/renewal/window_start",
        "/rules/0/expression",
        "/rules/1/id",
        "/validity/default_days",
    ]
    assert issues == sorted(issues)


def test_schema_and_semantic_errors_together_do_not_crash_on_wrong_types():
    issues = issues_of(
        doc(
            identifiers={"allow": "everything", "deny": {"suffixes": [1, "Bad"]}},
            rules=[{"id": 5, "at": "order", "expression": ["x"]}, "rule"],
            approvals={"rules": [{"id": "a", "when": "always"}]},
            validity={"default_days": "ninety"},
            renewal=[0.1, 0.2],
            eab={"k": []},
        )
    )
    assert {i.pointer for i in issues} >= {
        "/identifiers/allow",
        "/identifiers/deny/suffixes/0",
        "/identifiers/deny/suffixes/1",
        "/rules/0/id",
        "/rules/0/expression",
        "/rules/1",
        "/approvals/rules/0/when",
        "/validity/default_days",
        "/renewal",
        "/eab/k",
    }


def test_the_exception_says_every_issue():
    with pytest.raises(PolicyInvalid, match="/identifiers/allo: unknown member"):
        policy_from_json(doc(identifiers={"allo": {}}))


def test_pointers_escape_tilde_and_slash():
    assert pointer("eab", "a/b", "m~n", 0) == "/eab/a~1b/m~0n/0"
    assert pointer() == ""


# -- comparing versions ------------------------------------------------------------------------


def policy(**sections: Any) -> Policy:
    return policy_from_json(doc(**sections))


APPROVE_WILDCARDS = {"rules": [{"id": "w", "when": {"wildcard": True}}]}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({}, {}, []),
        ({}, {"identifiers": {"deny": {"suffixes": ["corp.example"]}}}, []),
        ({}, {"rules": [{"id": "r", "at": "order", "expression": "true"}]}, []),
        ({}, {"validity": {"default_days": 30}}, []),
        ({}, {"profiles": {"default": {"issuer": None, "description": "other words"}}}, []),
        ({}, {"profiles": {"default": {"issuer": "iss-2"}}}, ["/profiles"]),
        ({}, {"profiles": {"default": {}, "long": {"issuer": None}}}, ["/profiles"]),
        ({}, {"validity": {"max_days": 365}}, ["/validity/max_days"]),
        ({"validity": {"max_days": 365}}, {}, ["/validity/max_days"]),
        ({}, {"approvals": APPROVE_WILDCARDS}, ["/approvals"]),
        ({"approvals": APPROVE_WILDCARDS}, {}, ["/approvals"]),
        ({}, {"approvals": {"deadline_hours": 1}}, ["/approvals"]),
        ({}, {"eab": {"k-1": {"max_validity_days": 7}}}, ["/eab/k-1/max_validity_days"]),
        (
            {"eab": {"k": {"max_validity_days": 7}}},
            {"eab": {"k": {}}},
            ["/eab/k/max_validity_days"],
        ),
        ({"eab": {"k": {"keys": {"allowed": ["ec-p256"]}}}}, {"eab": {"k": {}}}, []),
        (
            {},
            {
                "validity": {"max_days": 30},
                "approvals": APPROVE_WILDCARDS,
                "profiles": {"default": {"issuer": "i"}},
            },
            ["/approvals", "/profiles", "/validity/max_days"],
        ),
    ],
)
def test_sensitive_changes(old: dict[str, Any], new: dict[str, Any], expected: list[str]):
    assert sensitive_changes(policy(**old), policy(**new)) == expected


def test_sensitive_changes_against_the_builtin_policy():
    unchanged = parse_policy("schema: certplane/policy/v1\nvalidity: {max_days: 90}\n")
    assert sensitive_changes(Policy.builtin(), unchanged) == []


def test_diff_documents_lists_every_change_sorted_by_path():
    old = {"a": 1, "b": {"c": [1, 2, 3], "d": True}, "e": "x", "list": list(range(12))}
    new = {"a": 2, "b": {"c": [1, 5], "d": 1}, "f": None, "list": [*range(11), 99]}
    assert diff_documents(old, new) == [
        {"op": "replace", "path": "/a", "old": 1, "new": 2},
        {"op": "replace", "path": "/b/c/1", "old": 2, "new": 5},
        {"op": "remove", "path": "/b/c/2", "old": 3},
        {"op": "replace", "path": "/b/d", "old": True, "new": 1},
        {"op": "remove", "path": "/e", "old": "x"},
        {"op": "add", "path": "/f", "new": None},
        {"op": "replace", "path": "/list/11", "old": 11, "new": 99},
    ]


def test_diff_of_policy_documents():
    old, new = policy().document, policy(identifiers={"wildcards": False}).document
    assert diff_documents(old, new) == [
        {"op": "replace", "path": "/identifiers/wildcards", "old": True, "new": False}
    ]
    assert diff_documents(old, old) == []


def test_diff_escapes_member_names():
    assert diff_documents({}, {"a/b": {"~": 1}}) == [
        {"op": "add", "path": "/a~1b", "new": {"~": 1}}
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


def apply_diff(document: Any, changes: list[dict[str, Any]]) -> Any:
    """A test oracle: additions and replacements in order, then removals from the last."""
    result = json.loads(json.dumps(document))
    removals = [c for c in changes if c["op"] == "remove"]
    for change in [c for c in changes if c["op"] != "remove"] + removals[::-1]:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in change["path"].split("/")[1:]]
        node = result
        for token in tokens[:-1]:
            node = node[int(token)] if isinstance(node, list) else node[token]
        key: Any = int(tokens[-1]) if isinstance(node, list) else tokens[-1]
        if change["op"] == "remove":
            del node[key]
        elif isinstance(node, list) and key == len(node):
            node.append(change["new"])
        else:
            node[key] = change["new"]
    return result


MEMBERS = st.dictionaries(st.text(max_size=3), JSON, max_size=4)


@settings(max_examples=200, deadline=None)
@given(MEMBERS, MEMBERS)
def test_applying_the_diff_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]):
    changes = diff_documents(old, new)
    assert apply_diff(old, changes) == new
    assert (changes == []) == (json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True))


def test_characters_yaml_forbids_are_an_issue_not_a_crash():
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy("schema: certplane/policy/v1\x1f", media_type="application/yaml")
    assert [issue.pointer for issue in caught.value.issues] == [""]
