"""JSON Schemas of the management API's bodies (OpenAPI 3.1 uses JSON Schema 2020-12).

Responses are checked against these in the test suite (every answer of every test), and by
schemathesis in CI, so the published document stays true.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from certplane.server.admin.endpoints import QueryParam
from certplane.server.admin.problems import invalid

T = TypeVar("T")
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"}
ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
IDENTIFIER = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {"type": STRING, "value": STRING},
}
PAGE_SIZE_MAX = 200
# PostgreSQL refuses NUL in text, and a lone surrogate (JSON "\ud800") is not UTF-8: such
# strings are refused at the edge (400), on every backend alike.
UNSTORABLE = "NUL characters and unpaired surrogates are not accepted"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def obj(required: list[str], properties: dict[str, Any], *, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    return obj(
        ["items", "next_cursor"],
        {"items": {"type": "array", "items": item}, "next_cursor": NULLABLE_STRING},
    )


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


PAGE_PARAMS = (
    QueryParam(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": 50},
        "page size",
    ),
    QueryParam("cursor", {"type": "string", "maxLength": 400}, "next_cursor of the page before"),
)


def encode_cursor(*parts: str) -> str:
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None, arity: int) -> list[str] | None:
    """The parts of a cursor this API issued; anything else is a 400 naming the parameter."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != arity
        or not all(isinstance(p, str) and storable_text(p) for p in parts)
    ):
        raise invalid("cursor: not a cursor this API issued", "/query/cursor")
    return parts


def key_after(query: dict[str, Any]) -> str | None:
    """The key a page of a keyed list starts after (from its ``cursor``)."""
    parts = decode_cursor(query.get("cursor"), 1)
    return None if parts is None else parts[0]


def keyed_page(rows: list[T], limit: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The page (``rows`` was read with ``limit + 1``) and the cursor after its last row."""
    page, more = rows[:limit], len(rows) > limit
    return page, encode_cursor(key(page[-1])) if more and page else None


def time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A ``(created_at, id)`` keyset cursor."""
    parts = decode_cursor(cursor, 2)
    if parts is None:
        return None
    try:
        stamp = datetime.fromisoformat(parts[0])
        if stamp.tzinfo is None:
            raise ValueError("no time zone")
        return stamp.astimezone(UTC), parts[1]
    except (ValueError, OverflowError):
        raise invalid("cursor: not a cursor this API issued", "/query/cursor") from None


def next_time_cursor(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page (``rows`` was fetched with ``limit + 1``) and the cursor after it."""
    page, more = rows[:limit], len(rows) > limit
    if not more or not page:
        return page, None
    last = page[-1]
    return page, encode_cursor(last["created_at"].isoformat(), last["id"])
