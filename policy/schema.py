"""The tenant policy format, version 1: its vocabulary, its built-in defaults, and the published
JSON Schema (:data:`POLICY_SCHEMA`, written to ``docs/policy.schema.json`` by
:func:`write_schema`; ``python -m certplane.policy.document docs/policy.schema.json``).

The schema says what a document may hold; what it cannot say (DNS names, networks, CEL,
cross-field limits) is checked by ``certplane.policy.validation``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_ID = "https://certplane.dev/schemas/policy-v1.json"
SCHEMA_NAME = "certplane/policy/v1"

# -- vocabulary and built-in defaults ----------------------------------------------------------

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


def write_schema(path: str | Path) -> None:
    """Write :data:`POLICY_SCHEMA` as the published ``docs/policy.schema.json``."""
    Path(path).write_text(json.dumps(POLICY_SCHEMA, indent=2) + "\n", encoding="utf-8")
