"""The tenant's lifecycle events (append-only): query by type, object and time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall, QueryParam
from certplane.server.admin.schemas import (
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    next_time_cursor,
    obj,
    page_of,
    time_cursor,
)
from certplane.server.storage.repos.inventory import EventQuery

EVENT: dict[str, Any] = obj(
    ["id", "type", "object_type", "object_id", "actor", "data", "created_at"],
    {
        "id": STRING,
        "type": STRING,
        "object_type": STRING,
        "object_id": STRING,
        "actor": STRING,
        "data": {"type": "object"},
        "created_at": TIMESTAMP,
    },
)


def event_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "object_type": row["object_type"],
        "object_id": row["object_id"],
        "actor": row["actor"],
        "data": row["data"],
        "created_at": row["created_at"].isoformat(),
    }


def _text(name: str, description: str) -> QueryParam:
    return QueryParam(name, {"type": "string", "minLength": 1, "maxLength": 64}, description)


@API.route(
    "GET",
    "/tenants/{tenant}/events",
    operation_id="listEvents",
    permission=Permission.EVENTS_READ,
    summary="Lifecycle events, oldest first",
    response=page_of(EVENT),
    query=(
        _text("type", "e.g. certificate.issued, approval.approved, policy.decision"),
        _text("object_type", "e.g. order, certificate, approval, policy, tenant"),
        _text("object_id", "the object's id"),
        QueryParam("since", {"type": "string", "format": "date-time"}, "at or after"),
        QueryParam("until", {"type": "string", "format": "date-time"}, "before"),
        *PAGE_PARAMS,
    ),
    tag="events",
)
async def list_events(call: ApiCall) -> Answer:
    q, limit = call.query, call.query["limit"]
    query = EventQuery(
        type=q.get("type"),
        object_type=q.get("object_type"),
        object_id=q.get("object_id"),
        since=q.get("since"),
        until=q.get("until"),
    )
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.inventory.events(
            query, cursor=time_cursor(q.get("cursor")), limit=limit + 1
        )
    page, cursor = next_time_cursor(rows, limit)
    return Answer({"items": [event_json(r) for r in page], "next_cursor": cursor})
