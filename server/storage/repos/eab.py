"""External Account Binding keys of one tenant (RFC 8555 §7.3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certplane.server.model import EabKey, EabStatus
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w


def _eab(row: Mapping[str, Any]) -> EabKey:
    return EabKey(
        kid=row["id"],
        label=row["label"],
        hmac_sealed=row["hmac_sealed"],
        status=EabStatus(row["status"]),
        account_id=row["account_id"],
        created_at=row["created_at"],
        bound_at=row["bound_at"],
        created_by=row["created_by"],
    )


_e = t.eab_keys
_BY_ID = scoped_select(_e).where(_e.c.id == w("id"))
_ALL = scoped_select(_e).order_by(_e.c.created_at, _e.c.id)
# Only an unbound key changes status (bound and revoked are final).
_FROM_UNBOUND = scoped_update(_e).where(_e.c.id == w("id"), _e.c.status == EabStatus.UNBOUND.value)


class EabRepo(ScopedRepo):
    table = t.eab_keys

    async def get(self, kid: str) -> EabKey | None:
        row = await self._one(_BY_ID, w_id=kid)
        return None if row is None else _eab(row)

    async def list(self) -> list[EabKey]:
        return [_eab(row) for row in await self._all(_ALL)]

    async def create(
        self, kid: str, label: str, hmac_sealed: bytes, now: datetime, *, created_by: str = ""
    ) -> None:
        await self._insert(
            id=kid,
            created_by=created_by,
            label=label,
            hmac_sealed=hmac_sealed,
            status=EabStatus.UNBOUND.value,
            account_id=None,
            created_at=now,
        )

    async def bind(self, kid: str, account_id: str, now: datetime) -> bool:
        """Bind an unbound key; False when another request bound or revoked it first."""
        values = {"status": EabStatus.BOUND.value, "account_id": account_id, "bound_at": now}
        return await self._write(_FROM_UNBOUND, w_id=kid, **values) == 1

    async def revoke(self, kid: str, now: datetime) -> bool:
        """Revoke a key that is still unbound; False otherwise."""
        values = {"status": EabStatus.REVOKED.value, "revoked_at": now}
        return await self._write(_FROM_UNBOUND, w_id=kid, **values) == 1
