"""The append-only lifecycle event log of one tenant (ARCHITECTURE.md §0.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from certplane.server.model import EventType
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo
from certplane.server.storage.scope import new_id


class EventRepo(ScopedRepo):
    """Events are appended in the transaction of the change they record, never updated."""

    table = t.events

    async def append(
        self,
        type: EventType,
        *,
        object_type: str,
        object_id: str,
        actor: str,
        now: datetime,
        **data: Any,
    ) -> None:
        await self._insert(
            id=new_id(),
            type=type.value,
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            data=data,
            created_at=now,
        )

    async def for_object(self, object_type: str, object_id: str) -> list[dict[str, Any]]:
        stmt = (
            self._select()
            .where(t.events.c.object_type == object_type, t.events.c.object_id == object_id)
            .order_by(t.events.c.created_at)
        )
        return [dict(row) for row in await self._all(stmt)]

    async def list(self, limit: int = 1000) -> list[dict[str, Any]]:
        stmt = self._select().order_by(t.events.c.created_at).limit(limit)
        return [dict(row) for row in await self._all(stmt)]
