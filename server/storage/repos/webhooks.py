"""The webhook outbox of one tenant: notifications written with the change they announce."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w
from certplane.server.storage.scope import new_id

_d = t.webhook_deliveries
_GET = scoped_select(_d).where(_d.c.id == w("id"))
_SET = scoped_update(_d).where(_d.c.id == w("id"))
_ALL = scoped_select(_d).order_by(_d.c.created_at, _d.c.id)


class WebhookRepo(ScopedRepo):
    table = t.webhook_deliveries

    async def add(self, event: str, body: str, now: datetime) -> str:
        delivery_id = new_id()
        await self._insert(
            id=delivery_id, event=event, body=body, status="pending", attempts=0, created_at=now
        )
        return delivery_id

    async def get(self, delivery_id: str) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = await self._one(_GET, w_id=delivery_id)
        return row

    async def all(self) -> list[Mapping[str, Any]]:
        return list(await self._all(_ALL))

    async def record_attempt(
        self, delivery_id: str, *, status: str, attempts: int, error: str | None, now: datetime
    ) -> None:
        values: dict[str, Any] = {"status": status, "attempts": attempts, "last_error": error}
        if status == "delivered":
            values["delivered_at"] = now
        await self._write(_SET, w_id=delivery_id, **values)
