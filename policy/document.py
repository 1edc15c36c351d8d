"""Tenant policy documents: the published schema, parsing, validation, and the decisions a policy
makes at newAccount, newOrder and finalize (RFC 8555 §7.3, §7.4).

A policy is a versioned YAML or JSON document. :func:`parse_policy` (source text) and
:func:`policy_from_json` (a stored document) validate it against :data:`POLICY_SCHEMA` and then
semantically (CIDR, DNS names, CEL, cross-field limits), and raise :class:`PolicyInvalid` with
*every* problem, each at an RFC 6901 JSON pointer. A valid document becomes a :class:`Policy`
whose ``document`` is normalised: plain JSON values, with each section's built-in defaults made
explicit, so that every pointer a decision names resolves in what was stored.

Decisions are pure: they take the request's facts and return every :class:`Violation`, each
naming the rule that refused (a pointer into the document) in a sentence a client can read.
An EAB section (``/eab/<kid>``) applies on top of the tenant's rules for the accounts bound with
that key: it can only refuse more. CEL rules (``certplane.policy.cel``) fail closed: a rule that
errors or runs out of time refuses the request (and an approval rule that does so matches).

Identifier matching (names are precondition-normalised, as ``parse_identifiers`` returns them):

* ``suffixes``: a name matches a suffix when it is the suffix or below it (label-aligned).
* ``names``: exact names; a wildcard entry only matches the same wildcard.
* ``ip_ranges``: an ``ip`` identifier matches when the network contains it.
* ``allow``, when present, is an allow list for every identifier type: an identifier must match
  an entry of its own type (so an ``allow`` with only ``suffixes`` refuses every IP address).
* ``deny`` also refuses a wildcard that *covers* a denied name: ``*.example.com`` stands for
  ``admin.example.com`` (RFC 6125 §6.4.3), so denying that name or suffix refuses the wildcard.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from jsonschema import Draft202012Validator, ValidationError

from certplane.policy.cel import (
    CelCompileError,
    CelEvaluationError,
    CelTimeout,
    CompiledRule,
    compile_rule,
)
from certplane.policy.identifiers import IdentifierRejections, parse_identifiers

SCHEMA_ID = "https://certplane.dev/schemas/policy-v1.json"
SCHEMA_NAME = "certplane/policy/v1"
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_NESTING = 16  # the schema's deepest value is 7 levels down

KEY_ALGORITHMS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
DNS_CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")  # RFC 8555 §8.3, §8.4; RFC 8737
IP_CHALLENGES = ("http-01", "tls-alpn-01")  # RFC 8738 §7: no dns-01 for an address
WILDCARD_CHALLENGES = ("dns-01",)  # RFC 8555 §7.1.3
RULE_STAGES = ("order", "finalize", "account")
DEFAULT_DAYS = 90
DEFAULT_MAX_PER_ORDER = 100
DEFAULT_DEADLINE_HOURS = 72
DEFAULT_RENEWAL_WINDOW = (0.6667, 0.9)
DEFAULT_PROFILE = "default"

JsonObject = dict[str, Any]

# -- the published schema ----------------------------------------------------------------------

_ID_PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$"


def _object(description: str, properties: JsonObject, **extra: Any) -> JsonObject:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _list(description: str, items: JsonObject, **extra: Any) -> JsonObject:
    return {
        "type": "array",
        "description": description,
        "items": items,
        "uniqueItems": True,
        **extra,
    }


def _ref(name: str, description: str) -> JsonObject:
    return {"$ref": f"#/$defs/{name}", "description": description}


def _days(description: str) -> JsonObject:
    return {"type": "integer", "minimum": 1, "maximum": 3650, "description": description}


def _enum_list(description: str, values: Sequence[str]) -> JsonObject:
    return _list(description, {"enum": list(values)}, minItems=1)


_MATCH_SET = _object(
    "Identifiers to match, by type.",
    {
        "suffixes": _list(
            "DNS suffixes: each matches itself and every name below it.",
            {
                "type": "string",
                "minLength": 1,
                "maxLength": 251,
                "description": "Lowercase LDH labels (IDNA A-labels allowed), no wildcard.",
            },
        ),
        "names": _list(
            'Exact DNS names; a wildcard entry ("*.example.com") only matches that wildcard.',
            {
                "type": "string",
                "minLength": 1,
                "maxLength": 253,
                "description": "Lowercase LDH labels (IDNA A-labels allowed), at least two.",
            },
        ),
        "ip_ranges": _list(
            "IPv4 and IPv6 networks (RFC 8738 identifiers).",
            {
                "type": "string",
                "minLength": 1,
                "maxLength": 49,
                "description": "CIDR notation with zero host bits; a bare address is one host.",
            },
        ),
    },
)
_IDENTIFIERS = _object(
    "Which identifiers an order may hold (RFC 8555 §7.1.3, RFC 8738).",
    {
        "allow": _ref(
            "matchSet", "When present, every identifier must match an entry of its own type."
        ),
        "deny": _ref("matchSet", "Any match refuses the identifier; checked before allow."),
        "wildcards": {"type": "boolean", "description": "false: wildcard names are refused."},
        "max_per_order": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "description": "Most identifiers one order may hold.",
        },
    },
)
_KEYS = _object(
    "Certificate keys accepted at finalize (RFC 8555 §7.4).",
    {"allowed": _enum_list("Key algorithms a CSR may use.", KEY_ALGORITHMS)},
)
_RULE = _object(
    "A custom rule: the request passes only if the expression evaluates to true.",
    {
        "id": {"type": "string", "pattern": _ID_PATTERN, "description": "Unique in its list."},
        "at": {"enum": list(RULE_STAGES), "description": "The request the rule applies to."},
        "expression": _ref("cel", "CEL over identifiers, account, eab, csr_key and profile."),
        "message": {
            "type": "string",
            "maxLength": 500,
            "description": "What a refused client is told.",
        },
    },
    required=["id", "at", "expression"],
)
_RULES = {
    "type": "array",
    "description": "Custom CEL rules; a rule that errors or times out refuses (fails closed).",
    "items": {"$ref": "#/$defs/rule"},
    "maxItems": 100,
}
_CEL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4096,
    "description": "A CEL expression that evaluates to a bool (certplane.policy.cel).",
}
_WHEN = _object(
    "Exactly one condition.",
    {
        "wildcard": {"const": True, "description": "Matches an order with a wildcard name."},
        "suffixes": _list(
            "Matches an order with a name at or below one of these suffixes.",
            {"type": "string", "minLength": 1, "maxLength": 251, "description": "A DNS suffix."},
            minItems=1,
        ),
        "names": _list(
            "Matches an order with one of these names (or a wildcard covering one).",
            {"type": "string", "minLength": 1, "maxLength": 253, "description": "A DNS name."},
            minItems=1,
        ),
        "cel": _ref("cel", "Matches when true (and when it errors: fails closed)."),
    },
)
_APPROVAL_RULE = _object(
    "Orders this rule matches wait for an approver.",
    {
        "id": {"type": "string", "pattern": _ID_PATTERN, "description": "Unique in the list."},
        "when": _ref("when", "The condition that requires approval."),
        "description": {"type": "string", "maxLength": 500, "description": "Shown to approvers."},
    },
    required=["id", "when"],
)
_PROFILE = _object(
    "A certificate profile an order may name.",
    {
        "issuer": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": 64,
            "description": "The issuer id that signs; null: the tenant's default issuer.",
        },
        "validity_days": _days("Certificate lifetime; absent: validity.default_days."),
        "description": {
            "type": "string",
            "maxLength": 500,
            "description": "Published in the ACME directory's meta.profiles.",
        },
    },
)
_EAB_SECTION = _object(
    "Narrower policy for accounts bound with this EAB key; it can only refuse more.",
    {
        "identifiers": _ref("identifiers", "Identifier rules, in addition to the tenant's."),
        "keys": _ref("keys", "Key algorithms, in addition to the tenant's."),
        "max_validity_days": _days("Lifetime ceiling for this key's certificates."),
        "rules": _ref("rules", "CEL rules, in addition to the tenant's."),
    },
)

POLICY_SCHEMA: JsonObject = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "certplane tenant policy",
    "description": "A tenant's issuance policy. Every section is optional: absent means the "
    "built-in default (no restriction, 90-day certificates).",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema"],
    "properties": {
        "schema": {"const": SCHEMA_NAME, "description": "The document format and version."},
        "identifiers": _ref("identifiers", "Which identifiers an order may hold."),
        "challenges": _object(
            "Challenge types offered, per identifier type (RFC 8555 §8).",
            {
                "dns": _enum_list("For DNS names.", DNS_CHALLENGES),
                "ip": _enum_list("For IP addresses (RFC 8738 §7).", IP_CHALLENGES),
                "wildcard": _enum_list(
                    "For wildcard names: dns-01 only (RFC 8555 §7.1.3).", WILDCARD_CHALLENGES
                ),
            },
        ),
        "keys": _ref("keys", "Certificate keys accepted at finalize."),
        "validity": _object(
            "Certificate lifetimes.",
            {
                "default_days": _days("Lifetime when the profile sets none."),
                "max_days": _days("Ceiling for default_days, every profile and every EAB key."),
            },
        ),
        "profiles": {
            "type": "object",
            "description": 'Certificate profiles by name; "default" serves orders naming none.',
            "propertyNames": {"pattern": _ID_PATTERN},
            "additionalProperties": {"$ref": "#/$defs/profile"},
            "required": [DEFAULT_PROFILE],
        },
        "approvals": _object(
            "Orders that wait for an approver before they can be finalized.",
            {
                "deadline_hours": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 720,
                    "description": "An undecided approval expires after this many hours.",
                },
                "rules": {
                    "type": "array",
                    "description": "The first matching rule requires approval.",
                    "items": {"$ref": "#/$defs/approvalRule"},
                    "maxItems": 100,
                },
            },
        ),
        "renewal": _object(
            "ACME Renewal Information window, as fractions of the certificate lifetime.",
            {
                "window_start": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "description": "Start of the suggested window; below window_end.",
                },
                "window_end": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 1,
                    "description": "End of the suggested window.",
                },
            },
        ),
        "accounts": _object(
            "newAccount rules (RFC 8555 §7.3).",
            {
                "require_contact": {
                    "type": "boolean",
                    "description": "true: an account must have a contact.",
                },
                "contact_domains": _list(
                    "Every mailto: contact must be at one of these domains or below.",
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 251,
                        "description": "A DNS suffix.",
                    },
                ),
            },
        ),
        "rules": _ref("rules", "Custom CEL rules."),
        "eab": {
            "type": "object",
            "description": "Narrower policies by EAB key id (RFC 8555 §7.3.4).",
            "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "additionalProperties": {"$ref": "#/$defs/eabSection"},
        },
    },
    "$defs": {
        "matchSet": _MATCH_SET,
        "identifiers": _IDENTIFIERS,
        "keys": _KEYS,
        "rule": _RULE,
        "rules": _RULES,
        "cel": _CEL,
        "when": _WHEN,
        "approvalRule": _APPROVAL_RULE,
        "profile": _PROFILE,
        "eabSection": _EAB_SECTION,
    },
}

_VALIDATOR = Draft202012Validator(POLICY_SCHEMA)


def write_schema(path: str | Path) -> None:
    """Write :data:`POLICY_SCHEMA` as the published ``docs/policy.schema.json``."""
    Path(path).write_text(json.dumps(POLICY_SCHEMA, indent=2) + "\n", encoding="utf-8")


# -- problems ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One problem with a document, at an RFC 6901 JSON pointer ("" is the whole document)."""

    pointer: str
    message: str


class PolicyInvalid(Exception):
    """The document is not a valid policy; ``issues`` holds every problem, sorted by pointer."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues: list[PolicyIssue] = sorted(set(issues))
        super().__init__("; ".join(f"{i.pointer or '/'}: {i.message}" for i in self.issues))


class UnknownProfile(LookupError):
    """The profile is not in the policy (the caller should have run ``check_order``)."""


def pointer(*tokens: str | int) -> str:
    """An RFC 6901 JSON pointer from reference tokens (``~`` and ``/`` escaped, §3)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _whole(message: str) -> PolicyInvalid:
    return PolicyInvalid([PolicyIssue("", message)])


# -- parsing -----------------------------------------------------------------------------------

_JSON_TYPES = frozenset({"application/json"})
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})


def parse_policy(text: str | bytes, *, media_type: str | None = None) -> Policy:
    """Parse YAML or JSON source (``media_type``; None: JSON if it starts with "{", else YAML).

    Raises :class:`PolicyInvalid`; a syntax error is one issue at "" naming the line.
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise _whole(f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _whole("the document is not UTF-8 text") from None
    if _is_json(source, media_type):
        return policy_from_json(_load_json(source))
    return policy_from_json(_load_yaml(source))


def _is_json(source: str, media_type: str | None) -> bool:
    if media_type is None:
        return source.lstrip().startswith("{")
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence in _JSON_TYPES or essence in _YAML_TYPES:
        return essence in _JSON_TYPES
    raise _whole(f"unsupported media type {media_type!r}: use application/json or application/yaml")


def _load_json(source: str) -> Any:
    try:
        return json.loads(source, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _whole(
            f"JSON error at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise _whole(f"JSON error: {error}") from None


def _unique_members(pairs: list[tuple[str, Any]]) -> JsonObject:
    result: JsonObject = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class _StrictYamlLoader(yaml.SafeLoader):
    """YAML restricted to JSON's data model: no anchors or aliases, string keys only, no
    duplicate keys, no timestamps, binary, sets or non-finite floats."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases are not allowed", problem_mark=event.start_mark
            )
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise yaml.MarkedYAMLError(
                problem=f"nesting deeper than {MAX_NESTING} levels", problem_mark=event.start_mark
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> JsonObject:  # type: ignore[override]
        mapping: JsonObject = {}
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                raise _refused(key_node, "mapping keys must be strings (quote the key)")
            key = self.construct_object(key_node, deep=deep)
            if key in mapping:
                raise _refused(key_node, f"duplicate key {key!r}")
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _refused(node: yaml.Node, problem: str) -> yaml.MarkedYAMLError:
    return yaml.constructor.ConstructorError(problem=problem, problem_mark=node.start_mark)


def _refuse_non_json(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    kind = node.tag.rsplit(":", 1)[-1]
    raise _refused(node, f"{kind} values are not JSON (quote the value)")


def _finite_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise _refused(node, "infinite and NaN numbers are not JSON")
    return value


for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _StrictYamlLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_non_json)
_StrictYamlLoader.add_constructor("tag:yaml.org,2002:float", _finite_float)


def _load_yaml(source: str) -> Any:
    loader = _StrictYamlLoader(source)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise _whole(_yaml_message(error)) from None
    except yaml.YAMLError as error:
        raise _whole(f"YAML error: {error}") from None
    finally:
        loader.dispose()


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML error{where}: {', '.join(filter(None, (error.context, error.problem)))}"


# -- validation --------------------------------------------------------------------------------


def policy_from_json(doc: JsonObject) -> Policy:
    """Validate a JSON document (schema, then meaning) and build its :class:`Policy`.

    Raises :class:`PolicyInvalid` with every issue found.
    """
    non_json = list(_non_json_values(doc, ""))
    if non_json:
        raise PolicyInvalid(non_json)
    issues = _schema_issues(doc) + _semantic_issues(doc)
    if issues:
        raise PolicyInvalid(issues)
    normalized = _normalized(doc)
    _check_size(normalized)
    return _build_policy(normalized)


def _check_size(doc: JsonObject) -> None:
    """The normalised document, as compact JSON, stays under the limit; normalising it again
    changes nothing, so a stored document always loads again."""
    size = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_DOCUMENT_BYTES:
        raise _whole(f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB as JSON")


def _non_json_values(value: object, at: str, depth: int = 0) -> Iterator[PolicyIssue]:
    """Only JSON values, at most :data:`MAX_NESTING` deep."""
    if depth > MAX_NESTING:
        yield PolicyIssue(at, f"nesting deeper than {MAX_NESTING} levels")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield PolicyIssue(at, f"member name {key!r} is not a string")
            else:
                yield from _non_json_values(item, at + pointer(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_json_values(item, at + pointer(index), depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        yield PolicyIssue(at, "infinite and NaN numbers are not JSON")
    elif value is not None and not isinstance(value, str | int | float | bool):
        yield PolicyIssue(at, f"{type(value).__name__} is not a JSON value")


def _schema_issues(doc: object) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    for error in _VALIDATOR.iter_errors(doc):
        issues.extend(_issues_of(error))
    return issues


def _issues_of(error: ValidationError) -> Iterator[PolicyIssue]:
    """A schema error at its pointer; an unknown member or bad map key at that member."""
    at = pointer(*error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for key in error.instance:
            if key not in known:
                yield PolicyIssue(at + pointer(key), "unknown member")
    elif "propertyNames" in error.relative_schema_path:
        yield PolicyIssue(at + pointer(str(error.instance)), f"invalid name: {error.message}")
    else:
        yield PolicyIssue(at, error.message)


def _get(value: object, *keys: str) -> Any:
    """The member at ``keys`` below ``value``, or None where the shape is wrong."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _items(value: object) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def _members(value: object) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _semantic_issues(doc: object) -> list[PolicyIssue]:
    """What the schema cannot say: names, networks, CEL, ids, cross-field limits."""
    issues = _identifier_issues(_get(doc, "identifiers"), "/identifiers")
    issues += _rule_issues(_get(doc, "rules"), "/rules")
    for kid, section in _members(_get(doc, "eab")):
        base = pointer("eab", kid)
        issues += _identifier_issues(_get(section, "identifiers"), base + "/identifiers")
        issues += _rule_issues(_get(section, "rules"), base + "/rules")
    issues += _approval_issues(_get(doc, "approvals"))
    issues += _validity_issues(doc)
    issues += _renewal_issues(_get(doc, "renewal"))
    domains = _get(doc, "accounts", "contact_domains")
    issues += _dns_issues(domains, "/accounts/contact_domains", suffixes=True)
    return issues


def _identifier_issues(section: object, base: str) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    for part in ("allow", "deny"):
        match_set = _get(section, part)
        at = f"{base}/{part}"
        issues += _dns_issues(_get(match_set, "suffixes"), at + "/suffixes", suffixes=True)
        issues += _dns_issues(_get(match_set, "names"), at + "/names", suffixes=False)
        issues += _network_issues(_get(match_set, "ip_ranges"), at + "/ip_ranges")
    return issues


def _dns_issues(values: object, at: str, *, suffixes: bool) -> list[PolicyIssue]:
    issues = []
    for index, value in _items(values):
        problem = _dns_problem(value, suffix=suffixes) if isinstance(value, str) else None
        if problem:
            issues.append(PolicyIssue(f"{at}/{index}", f"{value!r}: {problem}"))
    return issues


def _dns_problem(text: str, *, suffix: bool) -> str | None:
    """Why ``text`` is not a lowercase DNS name (a suffix: may be one label, no wildcard)."""
    if suffix and "*" in text:
        return "a suffix cannot hold a wildcard: it already covers every name below it"
    candidate = "x." + text if suffix else text
    try:
        (identifier,) = parse_identifiers([{"type": "dns", "value": candidate}])
    except IdentifierRejections as rejected:
        return rejected.rejections[0].detail
    if identifier.value != candidate:
        return "must be lowercase, without a trailing dot"
    return None


def _network_issues(values: object, at: str) -> list[PolicyIssue]:
    issues = []
    for index, value in _items(values):
        if not isinstance(value, str):
            continue
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as error:
            issues.append(PolicyIssue(f"{at}/{index}", f"not an IP network: {error}"))
    return issues


def _rule_issues(rules: object, base: str) -> list[PolicyIssue]:
    issues = _duplicate_id_issues(rules, base)
    for index, rule in _items(rules):
        issues += _cel_issues(_get(rule, "expression"), f"{base}/{index}/expression")
    return issues


def _duplicate_id_issues(rules: object, base: str) -> list[PolicyIssue]:
    first: dict[str, int] = {}
    issues = []
    for index, rule in _items(rules):
        rule_id = _get(rule, "id")
        if not isinstance(rule_id, str):
            continue
        if rule_id in first:
            where = f"{base}/{first[rule_id]}"
            issues.append(PolicyIssue(f"{base}/{index}/id", f"duplicate id {rule_id!r} ({where})"))
        else:
            first[rule_id] = index
    return issues


def _cel_issues(expression: object, at: str) -> list[PolicyIssue]:
    if not isinstance(expression, str):
        return []
    try:
        compile_rule(expression)
    except CelCompileError as error:
        return [PolicyIssue(at, f"CEL does not compile: {error.message}")]
    return []


_CONDITIONS = ("wildcard", "suffixes", "names", "cel")


def _approval_issues(approvals: object) -> list[PolicyIssue]:
    rules = _get(approvals, "rules")
    issues = _duplicate_id_issues(rules, "/approvals/rules")
    for index, rule in _items(rules):
        when = _get(rule, "when")
        at = f"/approvals/rules/{index}/when"
        if isinstance(when, dict):
            present = [c for c in _CONDITIONS if c in when]
            if len(present) != 1:
                found = ", ".join(present) or "none"
                issues.append(PolicyIssue(at, f"needs exactly one condition, found: {found}"))
        issues += _dns_issues(_get(when, "suffixes"), at + "/suffixes", suffixes=True)
        issues += _dns_issues(_get(when, "names"), at + "/names", suffixes=False)
        issues += _cel_issues(_get(when, "cel"), at + "/cel")
    return issues


def _validity_issues(doc: object) -> list[PolicyIssue]:
    given_max = _get(doc, "validity", "max_days")
    max_days = given_max if _is_number(given_max) else DEFAULT_DAYS
    ceiling = f"max_days ({max_days}{'' if _is_number(given_max) else ', the default'})"
    issues = []
    default_days = _get(doc, "validity", "default_days")
    if _is_number(default_days) and default_days > max_days:
        issues.append(PolicyIssue("/validity/default_days", f"is above {ceiling}"))
    for name, profile in _members(_get(doc, "profiles")):
        days = _get(profile, "validity_days")
        if _is_number(days) and days > max_days:
            at = pointer("profiles", name, "validity_days")
            issues.append(PolicyIssue(at, f"is above validity.{ceiling}"))
    return issues


def _renewal_issues(renewal: object) -> list[PolicyIssue]:
    start, end = _get(renewal, "window_start"), _get(renewal, "window_end")
    if not _is_number(start) and not _is_number(end):
        return []
    effective_start = start if _is_number(start) else DEFAULT_RENEWAL_WINDOW[0]
    effective_end = end if _is_number(end) else DEFAULT_RENEWAL_WINDOW[1]
    if effective_start < effective_end:
        return []
    at = "/renewal/window_start" if _is_number(start) else "/renewal/window_end"
    message = f"window_start ({effective_start}) must be below window_end ({effective_end})"
    return [PolicyIssue(at, message)]


def _normalized(doc: JsonObject) -> JsonObject:
    """A copy with each section's built-in defaults explicit, in the schema's member order."""
    out = copy.deepcopy(doc)
    identifiers = out.setdefault("identifiers", {})
    identifiers.setdefault("wildcards", True)
    identifiers.setdefault("max_per_order", DEFAULT_MAX_PER_ORDER)
    challenges = out.setdefault("challenges", {})
    challenges.setdefault("dns", list(DNS_CHALLENGES))
    challenges.setdefault("ip", list(IP_CHALLENGES))
    challenges.setdefault("wildcard", list(WILDCARD_CHALLENGES))
    out.setdefault("keys", {}).setdefault("allowed", list(KEY_ALGORITHMS))
    validity = out.setdefault("validity", {})
    validity.setdefault("max_days", DEFAULT_DAYS)
    validity.setdefault("default_days", min(DEFAULT_DAYS, validity["max_days"]))
    default_profile = {"issuer": None, "description": "The tenant's default profile."}
    out.setdefault("profiles", {DEFAULT_PROFILE: default_profile})
    approvals = out.setdefault("approvals", {})
    approvals.setdefault("deadline_hours", DEFAULT_DEADLINE_HOURS)
    approvals.setdefault("rules", [])
    renewal = out.setdefault("renewal", {})
    renewal.setdefault("window_start", DEFAULT_RENEWAL_WINDOW[0])
    renewal.setdefault("window_end", DEFAULT_RENEWAL_WINDOW[1])
    out.setdefault("accounts", {}).setdefault("require_contact", False)
    out.setdefault("rules", [])
    out.setdefault("eab", {})
    return {key: out[key] for key in POLICY_SCHEMA["properties"] if key in out}


# -- decisions: the values that cross the API --------------------------------------------------


@dataclass(frozen=True)
class Name:
    """An identifier of an order, normalised (``parse_identifiers``): ``type`` "dns" or "ip"."""

    type: str
    value: str

    @property
    def wildcard(self) -> bool:
        """A wildcard DNS name, "*.example.com" (RFC 8555 §7.1.3)."""
        return self.type == "dns" and self.value.startswith("*.")


@dataclass(frozen=True)
class RequestFacts:
    """Who asks: the account (not yet created at newAccount) and its EAB binding, if any."""

    account_id: str
    contact: tuple[str, ...]
    eab_kid: str | None
    eab_label: str | None
    profile: str = DEFAULT_PROFILE


@dataclass(frozen=True)
class Violation:
    """One refusal: ``rule`` is a JSON pointer into the deciding document; ``name`` the refused
    identifier, or None when the rule concerns the whole request."""

    rule: str
    detail: str
    name: Name | None = None


_FIXED_BITS = {"ed25519": 256, "ed448": 456}
_CURVES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}


@dataclass(frozen=True)
class CsrKey:
    """A CSR's key algorithm: "ec-p256", "ec-p384", "ec-p521", "rsa-<bits>", "ed25519", ..."""

    algorithm: str

    @property
    def type(self) -> str:
        """The family: "ec", "rsa", "ed25519", "dsa", ..."""
        return self.algorithm.partition("-")[0]

    @property
    def bits(self) -> int:
        """Key size in bits (0 when the algorithm does not say)."""
        size = self.algorithm.partition("-")[2].removeprefix("p")
        return int(size) if size.isdigit() else _FIXED_BITS.get(self.algorithm, 0)


def csr_key_of(public_key: object) -> CsrKey:
    """The :class:`CsrKey` of a ``cryptography`` public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return CsrKey(f"rsa-{public_key.key_size}")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        return CsrKey(_CURVES.get(curve, f"ec-{curve}"))
    if isinstance(public_key, dsa.DSAPublicKey):
        return CsrKey(f"dsa-{public_key.key_size}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return CsrKey("ed25519")
    if isinstance(public_key, ed448.Ed448PublicKey):
        return CsrKey("ed448")
    return CsrKey("unknown")


# -- decisions: compiled rules -----------------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _MatchSet:
    at: str  # pointer of the allow or deny object
    suffixes: tuple[str, ...]
    names: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, doc: Any, at: str) -> _MatchSet:
        networks = tuple(ipaddress.ip_network(n) for n in doc.get("ip_ranges", ()))
        return cls(at, tuple(doc.get("suffixes", ())), tuple(doc.get("names", ())), networks)


@dataclass(frozen=True)
class _NameRules:
    at: str  # "/identifiers" or "/eab/<kid>/identifiers"
    scope: str  # appended to details: "" or ' (EAB key "<kid>")'
    allow: _MatchSet | None
    deny: _MatchSet | None
    wildcards: bool | None  # None: this section does not restrict wildcards
    max_per_order: int | None

    @classmethod
    def of(cls, doc: Any, at: str, scope: str) -> _NameRules:
        allow, deny = doc.get("allow"), doc.get("deny")
        return cls(
            at,
            scope,
            None if allow is None else _MatchSet.of(allow, at + "/allow"),
            None if deny is None else _MatchSet.of(deny, at + "/deny"),
            doc.get("wildcards"),
            doc.get("max_per_order"),
        )


@dataclass(frozen=True)
class _CelRule:
    at: str
    rule_id: str
    stage: str
    message: str
    compiled: CompiledRule


@dataclass(frozen=True)
class _EabSection:
    names: _NameRules | None
    keys: tuple[str, ...] | None
    max_validity_days: int | None
    rules: tuple[_CelRule, ...]


@dataclass(frozen=True)
class _Profile:
    issuer: str | None
    validity_days: int | None
    description: str


@dataclass(frozen=True)
class _ApprovalRule:
    at: str
    wildcard: bool
    suffixes: tuple[str, ...]
    names: tuple[str, ...]
    cel: CompiledRule | None


def _cel_rules(doc: Any, at: str) -> tuple[_CelRule, ...]:
    return tuple(
        _CelRule(
            f"{at}/{index}",
            rule["id"],
            rule["at"],
            rule.get("message") or f'refused by rule "{rule["id"]}"',
            compile_rule(rule["expression"]),
        )
        for index, rule in enumerate(doc)
    )


def _eab_section(kid: str, doc: Any) -> _EabSection:
    base, scope = pointer("eab", kid), f' (EAB key "{kid}")'
    names = doc.get("identifiers")
    keys = doc.get("keys", {}).get("allowed")
    return _EabSection(
        None if names is None else _NameRules.of(names, base + "/identifiers", scope),
        None if keys is None else tuple(keys),
        doc.get("max_validity_days"),
        _cel_rules(doc.get("rules", []), base + "/rules"),
    )


def _approval_rule(index: int, doc: Any) -> _ApprovalRule:
    when = doc["when"]
    cel = when.get("cel")
    return _ApprovalRule(
        f"/approvals/rules/{index}",
        bool(when.get("wildcard", False)),
        tuple(when.get("suffixes", ())),
        tuple(when.get("names", ())),
        None if cel is None else compile_rule(cel),
    )


def _build_policy(doc: JsonObject) -> Policy:
    """Precondition: ``doc`` is valid and normalised."""
    profiles = {
        name: _Profile(p.get("issuer"), p.get("validity_days"), p.get("description", ""))
        for name, p in doc["profiles"].items()
    }
    return Policy(
        _document=doc,
        _names=_NameRules.of(doc["identifiers"], "/identifiers", ""),
        _eab={kid: _eab_section(kid, section) for kid, section in doc["eab"].items()},
        _rules=_cel_rules(doc["rules"], "/rules"),
        _approvals=tuple(_approval_rule(i, r) for i, r in enumerate(doc["approvals"]["rules"])),
        _profiles=profiles,
    )


# -- decisions: matching -----------------------------------------------------------------------


def _at_or_below(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _covers(wildcard: Name, name: str) -> bool:
    """A wildcard stands for every name exactly one label below its base (RFC 6125 §6.4.3)."""
    label, _, rest = name.partition(".")
    return wildcard.wildcard and label not in ("", "*") and rest == wildcard.value[2:]


def _suffix_touches(suffix: str, name: Name) -> bool:
    """Whether any name ``name`` stands for is at or below ``suffix``."""
    return _at_or_below(name.value, suffix) or _covers(name, suffix)


def _name_touches(listed: str, name: Name) -> bool:
    return listed == name.value or _covers(name, listed)


def _in_networks(name: Name, networks: Sequence[IPNetwork]) -> Iterator[int]:
    address = ipaddress.ip_address(name.value)
    return (index for index, network in enumerate(networks) if address in network)


def _deny_violations(deny: _MatchSet, name: Name, scope: str) -> Iterator[Violation]:
    if name.type == "ip":
        for index in _in_networks(name, deny.networks):
            detail = f'{name.value} is denied by IP range "{deny.networks[index]}"{scope}'
            yield Violation(f"{deny.at}/ip_ranges/{index}", detail, name)
        return
    for index, suffix in enumerate(deny.suffixes):
        if _suffix_touches(suffix, name):
            detail = f'{name.value} is denied by suffix "{suffix}"{scope}'
            yield Violation(f"{deny.at}/suffixes/{index}", detail, name)
    for index, listed in enumerate(deny.names):
        if _name_touches(listed, name):
            detail = f'{name.value} is denied by name "{listed}"{scope}'
            yield Violation(f"{deny.at}/names/{index}", detail, name)


def _allowed(allow: _MatchSet, name: Name) -> bool:
    if name.type == "ip":
        return any(True for _ in _in_networks(name, allow.networks))
    in_suffix = any(_at_or_below(name.value, suffix) for suffix in allow.suffixes)
    return in_suffix or name.value in allow.names


def _name_violations(rules: _NameRules, names: Sequence[Name]) -> Iterator[Violation]:
    if rules.max_per_order is not None and len(names) > rules.max_per_order:
        detail = f"the order has {len(names)} identifiers, more than {rules.max_per_order}"
        yield Violation(f"{rules.at}/max_per_order", detail + rules.scope)
    for name in names:
        if name.wildcard and rules.wildcards is False:
            detail = f"{name.value} is a wildcard and wildcards are not allowed{rules.scope}"
            yield Violation(f"{rules.at}/wildcards", detail, name)
        if rules.deny is not None:
            yield from _deny_violations(rules.deny, name, rules.scope)
        if rules.allow is not None and not _allowed(rules.allow, name):
            detail = f"{name.value} matches no entry of the allow list{rules.scope}"
            yield Violation(rules.allow.at, detail, name)


def _approval_matches(rule: _ApprovalRule, names: Sequence[Name], cel: _CelRun) -> bool:
    if rule.wildcard:
        return any(name.wildcard for name in names)
    if rule.suffixes:
        return any(_suffix_touches(s, n) for s in rule.suffixes for n in names if n.type == "dns")
    if rule.names:
        return any(_name_touches(listed, n) for listed in rule.names for n in names)
    return rule.cel is not None and cel.passes(rule.cel) is not False


# -- decisions: CEL ----------------------------------------------------------------------------


class _CelRun:
    """The CEL of one decision: one set of variables and one time budget for every rule."""

    def __init__(
        self, names: Sequence[Name], facts: RequestFacts, key: CsrKey | None, limit: float
    ) -> None:
        self.variables = _cel_variables(names, facts, key)
        self.limit = limit
        self._deadline = time.monotonic() + limit

    def passes(self, rule: CompiledRule) -> bool | str:
        """True or False, or why the rule could not decide (which refuses: fails closed)."""
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise CelTimeout
            return rule.evaluate(self.variables, time_limit=remaining)
        except CelTimeout:
            return f"did not finish within the {self.limit:g} s limit"
        except CelEvaluationError as error:
            return f"failed: {error}"

    def violations(self, rules: Sequence[_CelRule], stage: str) -> Iterator[Violation]:
        for rule in rules:
            if rule.stage != stage:
                continue
            outcome = self.passes(rule.compiled)
            if outcome is False:
                yield Violation(rule.at, rule.message)
            elif outcome is not True:
                yield Violation(rule.at, f'rule "{rule.rule_id}" {outcome}; refused (fails closed)')


def _cel_variables(
    names: Sequence[Name], facts: RequestFacts, key: CsrKey | None
) -> dict[str, Any]:
    """Exactly the variables ``certplane.policy.cel`` documents."""
    eab = None if facts.eab_kid is None else {"kid": facts.eab_kid, "label": facts.eab_label}
    csr_key = (
        None if key is None else {"algorithm": key.algorithm, "type": key.type, "bits": key.bits}
    )
    return {
        "identifiers": [{"type": n.type, "value": n.value, "wildcard": n.wildcard} for n in names],
        "account": {
            "id": facts.account_id,
            "contact": list(facts.contact),
            "eab_kid": facts.eab_kid,
        },
        "eab": eab,
        "csr_key": csr_key,
        "profile": facts.profile,
    }


def _mailto_domains(contact: str) -> list[str] | None:
    """The domains of a mailto: URI's addresses (RFC 6068), or None for another scheme."""
    scheme, colon, rest = contact.partition(":")
    if not colon or scheme.lower() != "mailto":
        return None
    addresses = unquote(rest.partition("?")[0]).split(",")
    return [address.rpartition("@")[2].strip().lower().removesuffix(".") for address in addresses]


# -- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A valid policy, compiled. Build it with :func:`parse_policy`, :func:`policy_from_json`
    or :meth:`builtin`; every ``cel_time_limit`` is the budget, in seconds, of all the CEL one
    decision runs."""

    _document: JsonObject
    _names: _NameRules
    _eab: dict[str, _EabSection]
    _rules: tuple[_CelRule, ...]
    _approvals: tuple[_ApprovalRule, ...]
    _profiles: dict[str, _Profile]

    @classmethod
    def builtin(cls) -> Policy:
        """The policy of a tenant without one: no restriction, 90 days, 100 identifiers."""
        return policy_from_json({"schema": SCHEMA_NAME})

    @property
    def document(self) -> JsonObject:
        """The normalised document (a copy): what is stored and shown."""
        return copy.deepcopy(self._document)

    @property
    def uses_cel(self) -> bool:
        """Whether a decision may evaluate CEL (then it may take up to its time limit)."""
        eab_rules = any(section.rules for section in self._eab.values())
        return bool(self._rules) or eab_rules or any(r.cel for r in self._approvals)

    def _eab_section(self, facts: RequestFacts) -> _EabSection | None:
        return None if facts.eab_kid is None else self._eab.get(facts.eab_kid)

    def check_order(
        self, names: Sequence[Name], facts: RequestFacts, *, cel_time_limit: float
    ) -> list[Violation]:
        """Every violation of a newOrder (RFC 8555 §7.4): identifier rules (one violation per
        refused identifier per rule), the profile, then CEL rules ``at: order``."""
        violations = list(_name_violations(self._names, names))
        violations += self._profile_violations(facts.profile)
        section = self._eab_section(facts)
        if section is not None and section.names is not None:
            violations += _name_violations(section.names, names)
        return violations + self._cel_violations(names, facts, None, "order", cel_time_limit)

    def check_finalize(
        self, names: Sequence[Name], facts: RequestFacts, key: CsrKey, *, cel_time_limit: float
    ) -> list[Violation]:
        """Every violation of a finalize (RFC 8555 §7.4): the CSR key, the profile (it may have
        gone since the order), then CEL rules ``at: finalize``."""
        violations = self._key_violations(key, self._document["keys"]["allowed"], "/keys/allowed")
        section = self._eab_section(facts)
        if section is not None and section.keys is not None:
            at = pointer("eab", facts.eab_kid or "", "keys", "allowed")
            violations += self._key_violations(key, section.keys, at)
        violations += self._profile_violations(facts.profile)
        return violations + self._cel_violations(names, facts, key, "finalize", cel_time_limit)

    def check_account(self, facts: RequestFacts, *, cel_time_limit: float) -> list[Violation]:
        """Every violation of a newAccount (RFC 8555 §7.3): contact rules, CEL ``at: account``
        (with an empty ``identifiers`` list)."""
        violations = self._contact_violations(facts.contact)
        return violations + self._cel_violations((), facts, None, "account", cel_time_limit)

    def approval_rule(
        self, names: Sequence[Name], facts: RequestFacts, *, cel_time_limit: float
    ) -> str | None:
        """The pointer of the first approval rule the order matches (a CEL condition that
        errors or times out matches), or None."""
        run = _CelRun(names, facts, None, cel_time_limit)
        return next((r.at for r in self._approvals if _approval_matches(r, names, run)), None)

    @property
    def approval_deadline(self) -> timedelta:
        return timedelta(hours=self._document["approvals"]["deadline_hours"])

    def challenge_types(self, name: Name) -> tuple[str, ...]:
        """The challenge types to offer, in the policy's order (RFC 8555 §8); a wildcard only
        ever gets dns-01 (§7.1.3)."""
        challenges = self._document["challenges"]
        if name.wildcard:
            return tuple(t for t in challenges["wildcard"] if t in WILDCARD_CHALLENGES)
        return tuple(challenges["ip" if name.type == "ip" else "dns"])

    def validity(self, profile: str, eab_kid: str | None) -> timedelta:
        """The lifetime: the profile's days or default_days, capped by max_days and the EAB
        key's max_validity_days. Raises :class:`UnknownProfile`."""
        validity = self._document["validity"]
        days = self._profile(profile).validity_days or validity["default_days"]
        days = min(days, validity["max_days"])
        section = None if eab_kid is None else self._eab.get(eab_kid)
        if section is not None and section.max_validity_days is not None:
            days = min(days, section.max_validity_days)
        return timedelta(days=days)

    def issuer_for(self, profile: str) -> str | None:
        """The issuer id of the profile (None: the tenant's default). Raises UnknownProfile."""
        return self._profile(profile).issuer

    @property
    def profiles(self) -> dict[str, str]:
        """Profile name -> description, for the directory's ``meta.profiles``."""
        return {name: profile.description for name, profile in self._profiles.items()}

    @property
    def renewal_window(self) -> tuple[float, float]:
        renewal = self._document["renewal"]
        return (renewal["window_start"], renewal["window_end"])

    def _profile(self, name: str) -> _Profile:
        try:
            return self._profiles[name]
        except KeyError:
            raise UnknownProfile(name) from None

    def _profile_violations(self, profile: str) -> list[Violation]:
        if profile in self._profiles:
            return []
        offered = ", ".join(sorted(self._profiles))
        return [Violation("/profiles", f'unknown profile "{profile}" (offered: {offered})')]

    @staticmethod
    def _key_violations(key: CsrKey, allowed: Sequence[str], at: str) -> list[Violation]:
        if key.algorithm in allowed:
            return []
        detail = f"certificate key {key.algorithm} is not allowed (allowed: {', '.join(allowed)})"
        return [Violation(at, detail)]

    def _contact_violations(self, contact: Sequence[str]) -> list[Violation]:
        accounts = self._document["accounts"]
        violations = []
        if accounts["require_contact"] and not contact:
            violations.append(Violation("/accounts/require_contact", "a contact is required"))
        allowed = accounts.get("contact_domains")
        for uri in contact if allowed is not None else ():
            domains = _mailto_domains(uri) or []
            if not all(any(_at_or_below(d, a) for a in allowed) for d in domains):
                detail = f'contact "{uri}" is not at an allowed domain ({", ".join(allowed)})'
                violations.append(Violation("/accounts/contact_domains", detail))
        return violations

    def _cel_violations(
        self,
        names: Sequence[Name],
        facts: RequestFacts,
        key: CsrKey | None,
        stage: str,
        limit: float,
    ) -> list[Violation]:
        section = self._eab_section(facts)
        rules = self._rules + (section.rules if section is not None else ())
        if not any(rule.stage == stage for rule in rules):
            return []
        return list(_CelRun(names, facts, key, limit).violations(rules, stage))


# -- comparing versions ------------------------------------------------------------------------


def sensitive_changes(old: Policy, new: Policy) -> list[str]:
    """Pointers of the sensitive fields ``new`` changes, for maker-checker: which issuer each
    profile maps to (``/profiles``), the validity ceiling (``/validity/max_days``), approvals
    (``/approvals``) and each EAB key's ceiling (``/eab/<kid>/max_validity_days``)."""
    a, b = old._document, new._document
    changed = []
    if _issuers(a) != _issuers(b):
        changed.append("/profiles")
    if a["validity"]["max_days"] != b["validity"]["max_days"]:
        changed.append("/validity/max_days")
    if a["approvals"] != b["approvals"]:
        changed.append("/approvals")
    for kid in sorted(set(a["eab"]) | set(b["eab"])):
        before = a["eab"].get(kid, {}).get("max_validity_days")
        if before != b["eab"].get(kid, {}).get("max_validity_days"):
            changed.append(pointer("eab", kid, "max_validity_days"))
    return sorted(changed)


def _issuers(doc: JsonObject) -> dict[str, str | None]:
    return {name: profile.get("issuer") for name, profile in doc["profiles"].items()}


def diff_documents(old: JsonObject, new: JsonObject) -> list[JsonObject]:
    """A JSON-Patch-like difference (RFC 6902 ops "add", "remove", "replace", with "old" and
    "new" values), sorted by path (list indices numerically); lists compare by index."""
    changes = list(_diff(old, new, ()))
    changes.sort(key=lambda change: change[0])
    return [change[1] for change in changes]


_Change = tuple[tuple[tuple[int, int | str], ...], JsonObject]


def _diff(old: Any, new: Any, path: tuple[int | str, ...]) -> Iterator[_Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            yield from _diff_member(old, new, key, path)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            yield from _diff_member(old, new, index, path)
    elif not _same(old, new):
        yield _change("replace", path, old=old, new=new)


def _diff_member(
    old: Any, new: Any, key: int | str, path: tuple[int | str, ...]
) -> Iterator[_Change]:
    in_old = key in old if isinstance(key, str) else key < len(old)
    in_new = key in new if isinstance(key, str) else key < len(new)
    if in_old and in_new:
        yield from _diff(old[key], new[key], (*path, key))
    elif in_old:
        yield _change("remove", (*path, key), old=old[key])
    else:
        yield _change("add", (*path, key), new=new[key])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _change(op: str, path: tuple[int | str, ...], **values: Any) -> _Change:
    key = tuple((0, t) if isinstance(t, int) else (1, t) for t in path)
    return key, {"op": op, "path": pointer(*path), **values}


if __name__ == "__main__":  # python -m certplane.policy.document docs/policy.schema.json
    write_schema(sys.argv[1] if len(sys.argv) > 1 else "docs/policy.schema.json")
