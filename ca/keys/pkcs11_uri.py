"""RFC 7512 ``pkcs11:`` URIs: the refs of keys held in PKCS#11 tokens.

Only what certplane writes and reads: path attributes (``token``, ``object``, ``id``, ``type``,
and the rest of RFC 7512 §2.3 kept verbatim) and query attributes (``module-path``,
``pin-source``; ``pin-value`` is refused so a PIN can never sit in a stored ref).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote, unquote_to_bytes

from .errors import KeystoreError

__all__ = ["Pkcs11Uri", "parse_pkcs11_uri"]

SCHEME = "pkcs11:"
_V = TypeVar("_V")
# RFC 7512 §2.3: p-pchar / q-pchar are unreserved characters, pct-encoded and a few sub-delims.
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_PATH_SAFE = _UNRESERVED + ":[]@!$'()*+,="
_PATH_ATTRIBUTES = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "object",
        "type",
        "id",
        "slot-description",
        "slot-manufacturer",
        "slot-id",
    }
)
_TYPES = frozenset({"public", "private", "cert", "secret-key", "data"})


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI; values are bytes because ``id`` is binary (RFC 7512 §2.3)."""

    path: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        return self._text("token")

    @property
    def object_label(self) -> str | None:
        return self._text("object")

    @property
    def key_id(self) -> bytes | None:
        return self.path.get("id")

    @property
    def object_type(self) -> str | None:
        return self._text("type")

    def _text(self, name: str) -> str | None:
        value = self.path.get(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise KeystoreError(f"pkcs11 URI attribute {name!r} is not UTF-8") from None

    def __str__(self) -> str:
        path = ";".join(f"{name}={_encode(value)}" for name, value in self.path.items())
        query = "&".join(
            f"{name}={quote(value, safe=_PATH_SAFE + '/')}" for name, value in self.query.items()
        )
        return SCHEME + path + (f"?{query}" if query else "")


def _encode(value: bytes) -> str:
    """Percent-encode all but unreserved characters (``id`` bytes are always %XX)."""
    return "".join(chr(b) if chr(b) in _UNRESERVED else f"%{b:02x}" for b in value)


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse ``text`` (RFC 7512 §2.3); each attribute at most once.

    Raises:
        KeystoreError: not a pkcs11 URI, a duplicate or unknown path attribute, a bad ``type``,
            or a ``pin-value`` (PINs come from a pin source, never from a ref).
    """
    if not text.startswith(SCHEME):
        raise KeystoreError("not a pkcs11: URI")
    body = text[len(SCHEME) :]
    path_text, _, query_text = body.partition("?")
    path: dict[str, bytes] = {}
    for name, value in _pairs(path_text, ";"):
        if name not in _PATH_ATTRIBUTES and not name.startswith("x-"):
            raise KeystoreError(f"pkcs11 URI: unknown path attribute {name!r}")
        _put(path, name, unquote_to_bytes(value))
    query: dict[str, str] = {}
    for name, value in _pairs(query_text, "&"):
        if name == "pin-value":
            raise KeystoreError("pkcs11 URI: pin-value is refused; use a pin-source")
        _put(query, name, unquote_to_bytes(value).decode("utf-8", "replace"))
    uri = Pkcs11Uri(path, query)
    if uri.object_type is not None and uri.object_type not in _TYPES:
        raise KeystoreError(f"pkcs11 URI: unknown type {uri.object_type!r}")
    return uri


def _pairs(text: str, separator: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, text.split(separator)):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise KeystoreError(f"pkcs11 URI: attribute without a value: {item[:40]!r}")
        pairs.append((name, value))
    return pairs


def _put(target: dict[str, _V], name: str, value: _V) -> None:
    if name in target:
        raise KeystoreError(f"pkcs11 URI: attribute {name!r} appears twice")
    target[name] = value
