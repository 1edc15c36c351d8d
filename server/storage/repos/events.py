"""The append-only lifecycle event log of one tenant (ARCHITECTURE.md §0.7)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from certplane.server.model import EventType
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, w
from certplane.server.storage.scope import new_id

_ev = t.events
_FOR_OBJECT = (
    scoped_select(_ev)
    .where(_ev.c.object_type == w("object_type"), _ev.c.object_id == w("object_id"))
    .order_by(_ev.c.created_at)
)
_OF_TYPE_FOR_OBJECTS = scoped_select(_ev, _ev.c.object_id, _ev.c.data).where(
    _ev.c.type == w("type"),
    _ev.c.object_type == w("object_type"),
    _ev.c.object_id.in_(w("object_ids", True)),
)
_LIST = scoped_select(_ev).order_by(_ev.c.created_at).limit(w("limit"))


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
        rows = await self._all(_FOR_OBJECT, w_object_type=object_type, w_object_id=object_id)
        return [dict(row) for row in rows]

    async def of_type_for_objects(
        self, type: EventType, object_type: str, object_ids: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """(object id, data) of every ``type`` event of the given objects."""
        if not object_ids:
            return []
        rows = await self._all(
            _OF_TYPE_FOR_OBJECTS,
            w_type=type.value,
            w_object_type=object_type,
            w_object_ids=list(object_ids),
        )
        return [(row["object_id"], dict(row["data"])) for row in rows]

    async def list(self, limit: int = 1000) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._all(_LIST, w_limit=limit)]
