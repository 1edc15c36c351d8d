"""From untrusted input to a valid, normalised policy document.

:func:`load_source` reads YAML or JSON source text, restricted to JSON's data model;
:func:`validated` checks a JSON document against :data:`~certplane.policy.schema.POLICY_SCHEMA`
and then semantically (CIDR, DNS names, CEL, cross-field limits), and raises
:class:`PolicyInvalid` with *every* problem, each at an RFC 6901 JSON pointer. A valid document
comes back normalised: plain JSON values, with each section's built-in defaults made explicit,
so that every pointer a decision names resolves in what was stored.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from certplane.policy.cel import CelCompileError, compile_rule
from certplane.policy.identifiers import IdentifierRejections, parse_identifiers
from certplane.policy.schema import (
    DEFAULT_DAYS,
    DEFAULT_DEADLINE_HOURS,
    DEFAULT_MAX_PER_ORDER,
    DEFAULT_PROFILE,
    DEFAULT_RENEWAL_WINDOW,
    DNS_CHALLENGES,
    IP_CHALLENGES,
    KEY_ALGORITHMS,
    POLICY_SCHEMA,
    WILDCARD_CHALLENGES,
    JsonObject,
)

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_NESTING = 16  # the schema's deepest value is 7 levels down

_VALIDATOR = Draft202012Validator(POLICY_SCHEMA)


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


def pointer(*tokens: str | int) -> str:
    """An RFC 6901 JSON pointer from reference tokens (``~`` and ``/`` escaped, §3)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _whole(message: str) -> PolicyInvalid:
    return PolicyInvalid([PolicyIssue("", message)])


# -- parsing -----------------------------------------------------------------------------------

_JSON_TYPES = frozenset({"application/json"})
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})


def load_source(text: str | bytes, *, media_type: str | None = None) -> Any:
    """The value of YAML or JSON source (``media_type``; None: JSON if it starts with "{",
    else YAML), restricted to JSON's data model; not yet validated (:func:`validated`).

    Raises :class:`PolicyInvalid`; a syntax error is one issue at "" naming the line.
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise _whole(f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _whole("the document is not UTF-8 text") from None
    return _load_json(source) if _is_json(source, media_type) else _load_yaml(source)


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
    loader: _StrictYamlLoader | None = None
    try:  # the reader refuses characters YAML does not allow while it is being constructed
        loader = _StrictYamlLoader(source)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise _whole(_yaml_message(error)) from None
    except yaml.YAMLError as error:
        raise _whole(f"YAML error: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML error{where}: {', '.join(filter(None, (error.context, error.problem)))}"


# -- validation --------------------------------------------------------------------------------


def validated(doc: JsonObject) -> JsonObject:
    """Validate a JSON document (schema, then meaning) and return a normalised copy: each
    section's built-in defaults explicit, in the schema's member order.

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
    return normalized


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
