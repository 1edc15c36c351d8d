"""External Account Binding keys of one tenant (RFC 8555 §7.3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certplane.server.model import EabKey, EabStatus
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo


def _eab(row: Mapping[str, Any]) -> EabKey:
    return EabKey(
        kid=row["id"],
        label=row["label"],
        hmac_sealed=row["hmac_sealed"],
        status=EabStatus(row["status"]),
        account_id=row["account_id"],
        created_at=row["created_at"],
        bound_at=row["bound_at"],
    )


class EabRepo(ScopedRepo):
    table = t.eab_keys

    async def get(self, kid: str) -> EabKey | None:
        row = await self._one(self._select().where(t.eab_keys.c.id == kid))
        return None if row is None else _eab(row)

    async def list(self) -> list[EabKey]:
        stmt = self._select().order_by(t.eab_keys.c.created_at, t.eab_keys.c.id)
        return [_eab(row) for row in await self._all(stmt)]

    async def create(self, kid: str, label: str, hmac_sealed: bytes, now: datetime) -> None:
        await self._insert(
            id=kid,
            label=label,
            hmac_sealed=hmac_sealed,
            status=EabStatus.UNBOUND.value,
            account_id=None,
            created_at=now,
        )

    async def bind(self, kid: str, account_id: str, now: datetime) -> bool:
        """Bind an unbound key; False when another request bound or revoked it first."""
        stmt = (
            self._update()
            .where(t.eab_keys.c.id == kid, t.eab_keys.c.status == EabStatus.UNBOUND.value)
            .values(status=EabStatus.BOUND.value, account_id=account_id, bound_at=now)
        )
        return await self._write(stmt) == 1

    async def revoke(self, kid: str, now: datetime) -> bool:
        """Revoke a key that is still unbound; False otherwise."""
        stmt = (
            self._update()
            .where(t.eab_keys.c.id == kid, t.eab_keys.c.status == EabStatus.UNBOUND.value)
            .values(status=EabStatus.REVOKED.value, revoked_at=now)
        )
        return await self._write(stmt) == 1
