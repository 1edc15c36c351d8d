"""GCRA buckets of one tenant, row-locked for the transaction that spends from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w

_r = t.rate_buckets
_LOCK = scoped_select(_r, _r.c.tat).where(_r.c.key == w("key")).with_for_update()
_SET = scoped_update(_r).where(_r.c.key == w("key"))
_READ = scoped_select(_r, _r.c.key, _r.c.tat).where(_r.c.key.in_(w("keys", True)))
# A new bucket is created full (a TAT not after now); an existing one is left as it is.
_CREATE: dict[str, Any] = {
    "sqlite": sqlite.insert(_r).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(_r).on_conflict_do_nothing(),
}


class RateBucketRepo(ScopedRepo):
    """The `BucketStore` of `certplane.policy.ratelimits.limiter`, inside one transaction."""

    table = t.rate_buckets

    async def lock(self, key: str, now: datetime) -> datetime:
        """The bucket's TAT, locked until the transaction ends (SQLite: the write lock the
        transaction already holds; PostgreSQL: SELECT … FOR UPDATE)."""
        create = _CREATE[self._conn.dialect.name]
        await self._conn.execute(create, {"tenant_id": self.tenant_id, "key": key, "tat": now})
        row = await self._one(_LOCK, w_key=key)
        tat: datetime = row["tat"]
        return tat

    async def store(self, key: str, tat: datetime) -> None:
        await self._write(_SET, w_key=key, tat=tat)

    async def read(self, keys: Sequence[str]) -> Mapping[str, datetime]:
        """The TATs of the buckets among ``keys`` that exist (a missing one is full); no lock."""
        if not keys:
            return {}
        rows = await self._all(_READ, w_keys=list(keys))
        return {row["key"]: row["tat"] for row in rows}
