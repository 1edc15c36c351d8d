"""The tenant's host inventory: what its agents found on their hosts, with flags computed when
read (expiring, expired, weak, unknown-issuer, unmanaged)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall, QueryParam
from certplane.server.admin.schemas import (
    BOOLEAN,
    INTEGER,
    NULLABLE_STRING,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    encode_cursor,
    obj,
    page_of,
    time_cursor,
)
from certplane.server.model import InventoryFlag
from certplane.server.storage.repos.host_inventory import HostInventoryQuery

EXPIRING_DAYS_DEFAULT = 30
LOCATION: dict[str, Any] = obj(
    ["kind", "served"],
    {
        "kind": {"enum": ["file", "config", "endpoint"]},
        "path": STRING,
        "index": INTEGER,
        "config_file": STRING,
        "line": INTEGER,
        "directive": STRING,
        "server_names": {"type": "array", "items": STRING},
        "host": STRING,
        "port": INTEGER,
        "sni": STRING,
        "served": BOOLEAN,
    },
)
INVENTORY_ITEM: dict[str, Any] = obj(
    ["id", "account_id", "host", "fingerprint", "subject", "sans", "issuer", "not_before",
     "not_after", "key_type", "signature_algorithm", "managed", "served", "locations",
     "certificate_id", "first_seen", "last_seen", "flags"],
    {
        "id": STRING,
        "account_id": STRING,
        "host": STRING,
        "fingerprint": STRING,
        "subject": STRING,
        "sans": {"type": "array", "items": STRING},
        "issuer": STRING,
        "not_before": TIMESTAMP,
        "not_after": TIMESTAMP,
        "key_type": STRING,
        "signature_algorithm": NULLABLE_STRING,
        "managed": BOOLEAN,
        "served": BOOLEAN,
        "locations": {"type": "array", "items": LOCATION},
        "certificate_id": NULLABLE_STRING,
        "first_seen": TIMESTAMP,
        "last_seen": TIMESTAMP,
        "flags": {"type": "array", "items": {"enum": [f.value for f in InventoryFlag]}},
    },
)  # fmt: skip


def _item(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "account_id", "host", "fingerprint", "subject", "issuer", "key_type",
            "signature_algorithm", "certificate_id", "flags")  # fmt: skip
    body = {key: row[key] for key in keys}
    body.update(
        sans=list(row["sans"]),
        managed=bool(row["managed"]),
        served=bool(row["served"]),
        locations=list(row["locations"]),
        **{k: row[k].isoformat() for k in ("not_before", "not_after", "first_seen", "last_seen")},
    )
    return body


def _next_cursor(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    page, more = rows[:limit], len(rows) > limit
    if not more or not page:
        return page, None
    return page, encode_cursor(page[-1]["first_seen"].isoformat(), page[-1]["id"])


@API.route(
    "GET",
    "/tenants/{tenant}/inventory",
    operation_id="listInventory",
    permission=Permission.CERTIFICATES_READ,
    summary="Certificates the tenant's agents found on their hosts, with flags",
    description=(
        "One entry per certificate, account and host, as the latest report of that account "
        "for that host has it, first seen first. flags: expiring (notAfter within "
        "expiring_days), expired, weak (RSA or DSA below 2048 bits, EC below 256, an MD5 or "
        "SHA-1 signature), unknown-issuer (not issued by this tenant), unmanaged (the agent "
        "does not manage it)."
    ),
    response=page_of(INVENTORY_ITEM),
    query=(
        QueryParam("host", {"type": "string", "minLength": 1, "maxLength": 253}, "one host"),
        QueryParam(
            "name",
            {"type": "string", "minLength": 1, "maxLength": 253},
            'a SAN, or ".example.com" for every name under example.com',
        ),
        QueryParam("flag", {"enum": [f.value for f in InventoryFlag]}, "only entries with it"),
        QueryParam("served", BOOLEAN, "only entries seen served (true) or not (false)"),
        QueryParam("expires_before", {"type": "string", "format": "date-time"}, "notAfter before"),
        QueryParam(
            "expiring_days",
            {"type": "integer", "minimum": 1, "maximum": 3650, "default": EXPIRING_DAYS_DEFAULT},
            "the horizon of the expiring flag, in days",
        ),
        *PAGE_PARAMS,
    ),
    tag="inventory",
)
async def list_inventory(call: ApiCall) -> Answer:
    q, limit = call.query, call.query["limit"]
    now = call.services.clock.now()
    query = HostInventoryQuery(
        now=now,
        soon=now + timedelta(days=q["expiring_days"]),
        host=q["host"].lower() if "host" in q else None,
        name=q["name"].lower() if "name" in q else None,
        flag=InventoryFlag(q["flag"]) if "flag" in q else None,
        served=q.get("served"),
        expires_before=q.get("expires_before"),
    )
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.host_inventory.page(
            query, cursor=time_cursor(q.get("cursor")), limit=limit + 1
        )
    page, cursor = _next_cursor(rows, limit)
    return Answer({"items": [_item(r) for r in page], "next_cursor": cursor})
