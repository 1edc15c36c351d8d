"""Quotas and rate limits of a tenant: live usage, tier and overrides."""

from __future__ import annotations

from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.app_support import provisioning_errors
from certplane.server.admin.endpoints import API, Answer, ApiCall
from certplane.server.admin.schemas import INTEGER, NULLABLE_TIMESTAMP, STRING, obj
from certplane.server.ra.limits import LIMIT_NAMES, LimitUsage, usage

USAGE: dict[str, Any] = obj(
    ["name", "rate", "source", "remaining", "resets_at"],
    {
        "name": STRING,
        "rate": STRING,
        "source": STRING,
        "remaining": INTEGER,
        "resets_at": NULLABLE_TIMESTAMP,
    },
)
LIMITS: dict[str, Any] = obj(
    ["tier", "overrides", "usage"],
    {
        "tier": STRING,
        "overrides": {"type": "object", "additionalProperties": STRING},
        "usage": {"type": "array", "items": USAGE},
    },
)


def _usage_json(item: LimitUsage) -> dict[str, Any]:
    return {
        "name": item.name,
        "rate": item.rate,
        "source": item.source,
        "remaining": item.remaining,
        "resets_at": item.resets_at.isoformat() if item.resets_at else None,
    }


async def _answer(call: ApiCall) -> Answer:
    services = call.services
    tenant = await services.uow.tenants.by_slug(call.scope.slug)
    assert tenant is not None
    limits = services.limits.for_tenant(tenant)
    async with services.uow.begin(call.scope, write=False) as tx:
        items = await usage(tx, limits, services.clock.now())
    return Answer(
        {
            "tier": tenant.tier,
            "overrides": dict(tenant.limit_overrides),
            "usage": [_usage_json(i) for i in items],
        }
    )


@API.route(
    "GET",
    "/tenants/{tenant}/limits",
    operation_id="getLimits",
    permission=Permission.LIMITS_READ,
    summary="The tenant's tier, overrides and live usage of its tenant-wide limits",
    response=LIMITS,
    tag="limits",
)
async def get_limits(call: ApiCall) -> Answer:
    return await _answer(call)


CHANGE = obj(
    [],
    {
        "tier": {"type": "string", "maxLength": 32, "description": '"" for the defaults'},
        "overrides": {
            "type": "object",
            "description": 'limit name -> "COUNT/PERIOD" (or "COUNT" for a cap), "off", or '
            "null to go back to the tier or configuration",
            "propertyNames": {"enum": sorted(LIMIT_NAMES.values())},
            "additionalProperties": {"type": ["string", "null"], "maxLength": 32},
        },
    },
)


@API.route(
    "PUT",
    "/tenants/{tenant}/limits",
    operation_id="setLimits",
    permission=Permission.LIMITS_WRITE,
    summary="Put the tenant on a tier and/or override single limits",
    request=CHANGE,
    response=LIMITS,
    tag="limits",
)
async def set_limits(call: ApiCall) -> Answer:
    changes = None
    if "overrides" in call.body:
        changes = {
            name: {"off": ""}.get(value, value) if value is not None else None
            for name, value in call.body["overrides"].items()
        }
    with provisioning_errors():
        await call.services.provisioner.set_tenant_limit_settings(
            call.scope.slug,
            tier=call.body.get("tier"),
            changes=changes,
            actor=call.principal.actor,
        )
    call.services.uow.tenants.invalidate()
    return await _answer(call)
