"""Redeemed nonces of one tenant (RFC 8555 §6.5): a nonce is accepted once, by any process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo

# ``INSERT … ON CONFLICT DO NOTHING`` per dialect: a second redemption inserts no row.
_REDEEM = {
    "postgresql": postgresql.insert(t.used_nonces).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(t.used_nonces).on_conflict_do_nothing(),
}


class NonceRepo(ScopedRepo):
    table = t.used_nonces

    async def redeem(self, nonce: str, expires_at: datetime) -> bool:
        """Record ``nonce`` as used; False when it was used before (by any replica)."""
        values = {"tenant_id": self.tenant_id, "nonce": nonce, "expires_at": expires_at}
        result = await self._conn.execute(_REDEEM[self._conn.dialect.name], values)
        return int(result.rowcount) == 1
