"""Tenant policy documents: loading one (:func:`parse_policy`, :func:`policy_from_json`) and
comparing two versions (:func:`sensitive_changes`, :func:`diff_documents`).

A policy is a versioned YAML or JSON document. The format and its published JSON Schema are in
``certplane.policy.schema``; reading and validating a document, with every problem at an
RFC 6901 JSON pointer, in ``certplane.policy.validation``; the decisions a valid document makes
at newAccount, newOrder and finalize in ``certplane.policy.decisions``. This module is the
import path the rest of certplane uses: it re-exports the public names of all three.

``python -m certplane.policy.document docs/policy.schema.json`` writes the published schema.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from certplane.policy.decisions import (
    CsrKey,
    IPNetwork,
    Name,
    Policy,
    RequestFacts,
    UnknownProfile,
    Violation,
    compile_policy,
    csr_key_of,
)
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
    RULE_STAGES,
    SCHEMA_ID,
    SCHEMA_NAME,
    WILDCARD_CHALLENGES,
    JsonObject,
    write_schema,
)
from certplane.policy.validation import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    PolicyInvalid,
    PolicyIssue,
    load_source,
    pointer,
    validated,
)

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_DEADLINE_HOURS",
    "DEFAULT_MAX_PER_ORDER",
    "DEFAULT_PROFILE",
    "DEFAULT_RENEWAL_WINDOW",
    "DNS_CHALLENGES",
    "IP_CHALLENGES",
    "KEY_ALGORITHMS",
    "MAX_DOCUMENT_BYTES",
    "MAX_NESTING",
    "POLICY_SCHEMA",
    "RULE_STAGES",
    "SCHEMA_ID",
    "SCHEMA_NAME",
    "WILDCARD_CHALLENGES",
    "CsrKey",
    "IPNetwork",
    "JsonObject",
    "Name",
    "Policy",
    "PolicyInvalid",
    "PolicyIssue",
    "RequestFacts",
    "UnknownProfile",
    "Violation",
    "csr_key_of",
    "diff_documents",
    "parse_policy",
    "pointer",
    "policy_from_json",
    "sensitive_changes",
    "write_schema",
]


# -- loading -----------------------------------------------------------------------------------


def parse_policy(text: str | bytes, *, media_type: str | None = None) -> Policy:
    """Parse YAML or JSON source (``media_type``; None: JSON if it starts with "{", else YAML).

    Raises :class:`PolicyInvalid`; a syntax error is one issue at "" naming the line.
    """
    return policy_from_json(load_source(text, media_type=media_type))


def policy_from_json(doc: JsonObject) -> Policy:
    """Validate a JSON document (schema, then meaning) and build its :class:`Policy`.

    Raises :class:`PolicyInvalid` with every issue found.
    """
    return compile_policy(validated(doc))


# -- comparing versions ------------------------------------------------------------------------


def sensitive_changes(old: Policy, new: Policy) -> list[str]:
    """Pointers of the sensitive fields ``new`` changes, for maker-checker: which issuer each
    profile maps to (``/profiles``), the validity ceiling (``/validity/max_days``), approvals
    (``/approvals``) and each EAB key's ceiling (``/eab/<kid>/max_validity_days``)."""
    a, b = old.document, new.document
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
