"""Human output of ``certplane api`` (and ``certplane token create``): a list as aligned
columns, an object as ``key: value`` lines, with a note under a secret shown only once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Fields the API shows once; the human rendering says so.
SECRETS = {"token": "token", "hmac_key": "HMAC key", "secret": "webhook signing key"}

# The most useful fields of each list, as columns (other lists: their first five fields).
TOKEN_COLUMNS = ("id", "principal", "roles", "label", "expires_at", "revoked_at")
COLUMNS: dict[str, tuple[str, ...]] = {
    "listTenants": ("slug", "status", "tier", "policy_version", "directory"),
    "listEabKeys": ("kid", "status", "label", "account_id", "created_at"),
    "listPolicyVersions": ("version", "status", "created_by", "created_at", "comment"),
    "listApprovals": ("id", "kind", "status", "requested_by", "deadline", "rule"),
    "listAccounts": ("id", "status", "contact", "eab_kid", "created_at"),
    "listOrders": ("id", "status", "identifiers", "account_id", "created_at"),
    "searchCertificates": ("id", "status", "not_after", "serial", "identifiers"),
    "listInventory": ("host", "sans", "not_after", "flags", "fingerprint"),
    "listEvents": ("created_at", "type", "object_type", "object_id", "actor"),
    "listTenantTokens": TOKEN_COLUMNS,
    "listPlatformTokens": TOKEN_COLUMNS,
}


def render(operation_id: str | None, body: Any, *, paged: bool = True) -> str:
    """A list as aligned columns, an object as ``key: value`` lines (secrets with a note)."""
    if isinstance(body, dict) and isinstance(body.get("items"), list) and "next_cursor" in body:
        text = table(body["items"], COLUMNS.get(operation_id or ""))
        cursor = body["next_cursor"]
        if cursor and paged:
            text += f"\n(more: --cursor {cursor}, or --all for every page)"
        return text
    if isinstance(body, dict):
        return render_object(body)
    return json.dumps(body, indent=2)


def render_object(body: Mapping[str, Any]) -> str:
    """``key: value`` lines (nested objects indented), then a note under each secret."""
    return "\n".join([*_fields(body, ""), *_secret_notes(body)])


def table(items: list[Any], columns: tuple[str, ...] | None = None) -> str:
    if not items:
        return "nothing found"
    if not all(isinstance(item, dict) for item in items):
        return "\n".join(cell(item) for item in items)
    names = columns or tuple(items[0])[:5]
    rows = [[name.upper() for name in names]]
    rows += [[cell(item.get(name)) for name in names] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cell(value: Any) -> str:
    """One value on one line: null (or "") as "-", identifiers by value, lists comma-joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        if not value:
            return "-"
        if set(value) == {"type", "value"}:
            return str(value["value"])
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _fields(body: Mapping[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in body.items():
        if isinstance(value, str) and "\n" in value:
            lines.append(f"{indent}{key}:")
            lines += [f"{indent}  {line}" for line in value.rstrip("\n").splitlines()]
        elif isinstance(value, dict) and value and set(value) != {"type", "value"}:
            lines += [f"{indent}{key}:", *_fields(value, indent + "  ")]
        elif _is_rows(value):
            lines.append(f"{indent}{key}:")
            lines += [f"{indent}  {line}" for line in table(value).splitlines()]
        else:
            lines.append(f"{indent}{key}: {cell(value)}")
    return lines


def _is_rows(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and set(v) != {"type", "value"} for v in value)
    )


def _secret_notes(body: Mapping[str, Any]) -> list[str]:
    return [
        f"(the {label} is shown only now: it will not be shown again)"
        for key, label in SECRETS.items()
        if isinstance(body.get(key), str) and body[key]
    ]
