"""The API's own description and the caller's identity."""

from __future__ import annotations

from typing import Any

from certplane.policy.document import POLICY_SCHEMA
from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall
from certplane.server.admin.openapi import openapi_document
from certplane.server.admin.schemas import NULLABLE_STRING, STRING, TIMESTAMP, obj


@API.route(
    "GET",
    "/openapi.json",
    operation_id="getOpenApi",
    permission=None,
    summary="This API's OpenAPI 3.1 description",
    response={"type": "object"},
    tag="meta",
)
async def get_openapi(call: ApiCall) -> Answer:
    return Answer(openapi_document(call.services.config.server.base_url))


@API.route(
    "GET",
    "/policy-schema",
    operation_id="getPolicySchema",
    permission=None,
    summary="The JSON Schema every tenant policy document is validated against",
    response={"type": "object"},
    tag="meta",
)
async def get_policy_schema(call: ApiCall) -> Answer:
    return Answer(POLICY_SCHEMA)


WHOAMI: dict[str, Any] = obj(
    ["principal", "roles", "tenant", "token_id"],
    {
        "principal": STRING,
        "roles": {"type": "array", "items": STRING},
        "tenant": NULLABLE_STRING,
        "token_id": STRING,
        "checked_at": TIMESTAMP,
    },
)


@API.route(
    "GET",
    "/whoami",
    operation_id="whoAmI",
    permission=Permission.WHOAMI,
    summary="The principal, roles and tenant of the calling token",
    response=WHOAMI,
    tag="meta",
)
async def whoami(call: ApiCall) -> Answer:
    principal = call.principal
    tenant = None
    if principal.tenant_id is not None:
        async with call.services.uow.platform(write=False) as platform:
            found = await platform.tenant_by_id(principal.tenant_id)
            tenant = found.slug if found is not None else None
    return Answer(
        {
            "principal": principal.name,
            "roles": sorted(r.value for r in principal.roles),
            "tenant": tenant,
            "token_id": principal.token_id,
            "checked_at": call.services.clock.now().isoformat(),
        }
    )
