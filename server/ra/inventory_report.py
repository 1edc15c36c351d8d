"""An agent's inventory report (``POST /acme/{tenant}/inventory``): the wire model and its
strict parser. Anything unexpected is a ``malformed`` problem naming the member, never a 500.

The payload::

    {"host": "web1.example.com",
     "items": [{"fingerprint": "<sha256 hex>", "subject": "CN=www.example.com",
                "sans": ["www.example.com"], "issuer": "CN=Tenant CA",
                "not_before": "2030-01-01T00:00:00Z", "not_after": "2030-04-01T00:00:00Z",
                "key_type": "ec-p256", "signature_algorithm": "ecdsa-with-SHA256",  # optional
                "managed": true,
                "locations": [{"kind": "file", "path": "/etc/ssl/www.pem", "index": 0},
                              {"kind": "config", "config_file": "/etc/nginx/nginx.conf",
                               "line": 12, "directive": "ssl_certificate",
                               "path": "/etc/ssl/www.pem", "server_names": ["www…"],
                               "served": true},
                              {"kind": "endpoint", "host": "127.0.0.1", "port": 443,
                               "sni": "www.example.com", "served": true}]}],
     "events": [{"type": "deployed", "certificate": "<sha256 hex>" | null, "name": "www",
                 "detail": "", "at": "2030-01-01T00:00:00Z"}]}

``events`` may be left out. An ``endpoint`` location is what a TLS probe saw served, so its
``served`` defaults to true; a ``config`` location is served only when it says so; a ``file``
location is never served.

NOTE(bounds): at most 2000 items and 200 events per report; per item 100 SANs and 32
locations; names up to 253 characters, DNs and paths 1024, event details 2048. The request
body limit of this endpoint is ``server.max_inventory_bytes`` (4 MiB by default, about 2 KiB
per item at the item bound) instead of ``server.max_body_bytes``: a report is one snapshot,
replaced whole, so it is not paged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from certplane.server.errors import malformed

MAX_ITEMS = 2000
MAX_EVENTS = 200
MAX_SANS = 100
MAX_LOCATIONS = 32
MAX_SERVER_NAMES = 32
MAX_NAME = 253  # a host or DNS name
MAX_DN = 1024  # a subject or issuer DN
MAX_PATH = 1024
MAX_DETAIL = 2048
MAX_LINE = 10_000_000
MAX_INDEX = 10_000
EVENT_TYPES = ("deployed", "renewed", "failed")
LOCATION_KINDS = ("file", "config", "endpoint")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_HOST = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,252}$")
_KEY_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_KEY_BITS = re.compile(r"^(rsa|dsa|ec)-p?(\d{1,5})$")
_SIGNATURE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CERT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# PostgreSQL refuses NUL in text; a lone surrogate is not UTF-8: refused on every backend.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_ITEM_MEMBERS = frozenset(
    {"fingerprint", "subject", "sans", "issuer", "not_before", "not_after", "key_type",
     "signature_algorithm", "managed", "locations"}
)  # fmt: skip
_EVENT_MEMBERS = frozenset({"type", "certificate", "name", "detail", "at"})
_LOCATION_MEMBERS: Mapping[str, frozenset[str]] = {
    "file": frozenset({"kind", "path", "index"}),
    "config": frozenset(
        {"kind", "config_file", "line", "directive", "path", "index", "server_names", "served"}
    ),
    "endpoint": frozenset({"kind", "host", "port", "sni", "served"}),
}
T = TypeVar("T")
LocationKind = Literal["file", "config", "endpoint"]
EventKind = Literal["deployed", "renewed", "failed"]


@dataclass(frozen=True)
class Location:
    """Where a certificate was found; ``to_json`` is what is stored and shown."""

    kind: LocationKind
    fields: Mapping[str, Any]
    served: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.fields, "served": self.served}

    @property
    def where(self) -> str:
        """A served location as the ``deployed`` event names it: ``host:port`` (and SNI) of
        an endpoint, ``file:line`` of a configuration directive."""
        if self.kind == "endpoint":
            host, port, sni = self.fields["host"], self.fields["port"], self.fields.get("sni")
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return f"{address} sni={sni}" if sni else address
        if self.kind == "config":
            return f"{self.fields['config_file']}:{self.fields['line']}"
        return str(self.fields["path"])


@dataclass(frozen=True)
class Item:
    """One certificate found on the host."""

    fingerprint: str
    subject: str
    sans: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    key_type: str
    signature_algorithm: str | None
    managed: bool
    locations: tuple[Location, ...]

    @property
    def served(self) -> bool:
        return any(location.served for location in self.locations)

    @property
    def key_bits(self) -> int | None:
        """The size a key type names (``rsa-2048``, ``ec-p256``), else None."""
        match = _KEY_BITS.fullmatch(self.key_type)
        return None if match is None else int(match.group(2))


@dataclass(frozen=True)
class Event:
    """Something the agent did: ``certificate`` is the fingerprint it concerns, if any."""

    type: EventKind
    certificate: str | None
    name: str
    detail: str
    at: datetime


@dataclass(frozen=True)
class InventoryReport:
    host: str
    items: tuple[Item, ...]
    events: tuple[Event, ...]


def parse_report(payload: Mapping[str, Any]) -> InventoryReport:
    """The report in ``payload``; raises ``malformed`` naming the first member that is wrong."""
    _members(payload, frozenset({"host", "items", "events"}), "report", required={"host", "items"})
    raw_host = payload["host"]
    host = _pattern(raw_host.lower() if isinstance(raw_host, str) else raw_host, "host", _HOST)
    items = _list(payload["items"], "items", MAX_ITEMS, _item)
    fingerprints = [item.fingerprint for item in items]
    if len(set(fingerprints)) != len(fingerprints):
        raise malformed("items: a fingerprint is listed twice")
    events = _list(payload.get("events", []), "events", MAX_EVENTS, _event)
    return InventoryReport(host, tuple(items), tuple(events))


def _item(raw: Any, where: str) -> Item:
    required = _ITEM_MEMBERS - {"signature_algorithm"}
    _members(raw, _ITEM_MEMBERS, where, required=required)
    not_before = _time(raw["not_before"], f"{where}.not_before")
    not_after = _time(raw["not_after"], f"{where}.not_after")
    if not_after < not_before:
        raise malformed(f"{where}: not_after is before not_before")
    signature = raw.get("signature_algorithm")
    return Item(
        fingerprint=_fingerprint(raw["fingerprint"], f"{where}.fingerprint"),
        subject=_text(raw["subject"], f"{where}.subject", MAX_DN),
        sans=tuple(s.lower() for s in _list(raw["sans"], f"{where}.sans", MAX_SANS, _san_text)),
        issuer=_text(raw["issuer"], f"{where}.issuer", MAX_DN),
        not_before=not_before,
        not_after=not_after,
        key_type=_pattern(raw["key_type"], f"{where}.key_type", _KEY_TYPE),
        signature_algorithm=None
        if signature is None
        else _pattern(signature, f"{where}.signature_algorithm", _SIGNATURE),
        managed=_bool(raw["managed"], f"{where}.managed"),
        locations=tuple(_list(raw["locations"], f"{where}.locations", MAX_LOCATIONS, _location)),
    )


def _san_text(raw: Any, where: str) -> str:
    return _text(raw, where, MAX_NAME, minimum=1)


def _location(raw: Any, where: str) -> Location:
    if not isinstance(raw, dict):
        raise malformed(f"{where} must be an object")
    kind = raw.get("kind")
    if kind not in LOCATION_KINDS:
        raise malformed(f"{where}.kind must be one of {', '.join(LOCATION_KINDS)}")
    if kind == "file":
        _members(raw, _LOCATION_MEMBERS["file"], where, required={"kind", "path"})
        return Location("file", _file_fields(raw, where), served=False)
    if kind == "config":
        return _config_location(raw, where)
    return _endpoint_location(raw, where)


def _file_fields(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"path": _text(raw["path"], f"{where}.path", MAX_PATH, minimum=1)}
    if "index" in raw:
        fields["index"] = _int(raw["index"], f"{where}.index", 0, MAX_INDEX)
    return fields


def _config_location(raw: Mapping[str, Any], where: str) -> Location:
    _members(raw, _LOCATION_MEMBERS["config"], where, required={"kind", "config_file", "line"})
    fields: dict[str, Any] = {
        "config_file": _text(raw["config_file"], f"{where}.config_file", MAX_PATH, minimum=1),
        "line": _int(raw["line"], f"{where}.line", 1, MAX_LINE),
    }
    if "directive" in raw:
        fields["directive"] = _text(raw["directive"], f"{where}.directive", 64, minimum=1)
    if "path" in raw:
        fields.update(_file_fields(raw, where))
    elif "index" in raw:
        raise malformed(f"{where}: index needs a path")
    if "server_names" in raw:
        fields["server_names"] = _list(
            raw["server_names"], f"{where}.server_names", MAX_SERVER_NAMES, _san_text
        )
    served = _optional_bool(raw.get("served"), f"{where}.served")
    return Location("config", fields, served=served is True)


def _endpoint_location(raw: Mapping[str, Any], where: str) -> Location:
    _members(raw, _LOCATION_MEMBERS["endpoint"], where, required={"kind", "host", "port"})
    fields: dict[str, Any] = {
        "host": _text(raw["host"], f"{where}.host", MAX_NAME, minimum=1).lower(),
        "port": _int(raw["port"], f"{where}.port", 1, 65535),
    }
    sni = raw.get("sni")
    if sni is not None:
        fields["sni"] = _text(sni, f"{where}.sni", MAX_NAME, minimum=1).lower()
    served = _optional_bool(raw.get("served"), f"{where}.served")
    return Location("endpoint", fields, served=served is not False)


def _event(raw: Any, where: str) -> Event:
    _members(raw, _EVENT_MEMBERS, where, required=_EVENT_MEMBERS)
    kind = raw["type"]
    if kind not in EVENT_TYPES:
        raise malformed(f"{where}.type must be one of {', '.join(EVENT_TYPES)}")
    certificate = raw["certificate"]
    return Event(
        type=kind,
        certificate=None
        if certificate is None
        else _fingerprint(certificate, f"{where}.certificate"),
        name=_pattern(raw["name"], f"{where}.name", _CERT_NAME),
        detail=_text(raw["detail"], f"{where}.detail", MAX_DETAIL),
        at=_time(raw["at"], f"{where}.at"),
    )


# --- the leaves -----------------------------------------------------------------------------


def _members(
    raw: Any, allowed: frozenset[str], where: str, *, required: set[str] | frozenset[str]
) -> None:
    if not isinstance(raw, dict):
        raise malformed(f"{where} must be an object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise malformed(f"{where}: unknown member {unknown[0][:64]!r}")
    missing = sorted(set(required) - set(raw))
    if missing:
        raise malformed(f"{where}: {missing[0]} is required")


def _list(raw: Any, where: str, maximum: int, parse: Callable[[Any, str], T]) -> list[T]:
    if not isinstance(raw, list):
        raise malformed(f"{where} must be an array")
    if len(raw) > maximum:
        raise malformed(f"{where}: at most {maximum} entries")
    return [parse(value, f"{where}[{index}]") for index, value in enumerate(raw)]


def _text(raw: Any, where: str, maximum: int, *, minimum: int = 0) -> str:
    if not isinstance(raw, str):
        raise malformed(f"{where} must be a string")
    if not minimum <= len(raw) <= maximum:
        raise malformed(f"{where} must be {minimum} to {maximum} characters")
    if _UNSTORABLE.search(raw):
        raise malformed(f"{where}: NUL characters and unpaired surrogates are not accepted")
    return raw


def _pattern(raw: Any, where: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        raise malformed(f"{where} must match {pattern.pattern}")
    return raw


def _fingerprint(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _FINGERPRINT.fullmatch(raw.lower()):
        raise malformed(f"{where} must be a SHA-256 fingerprint (64 hex digits)")
    return raw.lower()


def _int(raw: Any, where: str, minimum: int, maximum: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not minimum <= raw <= maximum:
        raise malformed(f"{where} must be an integer from {minimum} to {maximum}")
    return raw


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise malformed(f"{where} must be a boolean")
    return raw


def _optional_bool(raw: Any, where: str) -> bool | None:
    return None if raw is None else _bool(raw, where)


def _time(raw: Any, where: str) -> datetime:
    """An RFC 3339 date-time with an offset, as UTC."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise malformed(f"{where} must be an RFC 3339 date-time")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("no offset")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise malformed(f"{where} must be an RFC 3339 date-time with an offset") from None
