"""Anti-replay nonces (RFC 8555 §6.5).

A nonce is self-authenticating: random bytes, an expiry and an HMAC over both and the tenant id,
keyed by a secret derived from the master key, so every replica can check any replica's nonce
without a shared write. Redemption is a single insert into ``used_nonces`` (shared by all
replicas), which makes each nonce usable exactly once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from datetime import UTC, datetime, timedelta

_RANDOM_BYTES = 12
_MAC_BYTES = 16


class NonceService:
    def __init__(self, secret: bytes, lifetime: timedelta) -> None:
        self._secret = secret
        self._lifetime = lifetime

    def issue(self, tenant_id: str, now: datetime) -> str:
        expires = int((now + self._lifetime).timestamp())
        body = secrets.token_bytes(_RANDOM_BYTES) + struct.pack(">Q", expires)
        raw = body + self._mac(tenant_id, body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, tenant_id: str, nonce: str, now: datetime) -> datetime | None:
        """The nonce's expiry if it is authentic, for this tenant and unexpired; else None."""
        raw = _decode(nonce)
        if raw is None or len(raw) != _RANDOM_BYTES + 8 + _MAC_BYTES:
            return None
        body, mac = raw[: _RANDOM_BYTES + 8], raw[_RANDOM_BYTES + 8 :]
        if not hmac.compare_digest(mac, self._mac(tenant_id, body)):
            return None
        (expires,) = struct.unpack(">Q", body[_RANDOM_BYTES:])
        expires_at = datetime.fromtimestamp(expires, UTC)
        return expires_at if expires_at > now else None

    def _mac(self, tenant_id: str, body: bytes) -> bytes:
        message = tenant_id.encode("ascii") + b"\x00" + body
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _decode(nonce: str) -> bytes | None:
    if not nonce or len(nonce) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (binascii.Error, ValueError):
        return None
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return raw if canonical == nonce else None
