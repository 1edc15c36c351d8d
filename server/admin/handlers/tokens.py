"""API tokens: created (the secret is in that answer only), listed, revoked.

Tenant tokens carry tenant roles in one tenant; platform tokens carry platform roles. A tenant's
tokens are managed by its tenant-admins (and the platform admins); platform tokens only by
platform admins.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from certplane.policy.rbac import PLATFORM_ROLES, TENANT_ROLES, Permission
from certplane.server.admin.auth import mint_token
from certplane.server.admin.endpoints import API, Answer, ApiCall
from certplane.server.admin.problems import ApiProblem, ApiProblemType, conflict, not_found
from certplane.server.admin.schemas import (
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    key_after,
    keyed_page,
    obj,
    page_of,
)
from certplane.server.model import EventType
from certplane.server.storage.api_store import TokenRecord

TOKEN: dict[str, Any] = obj(
    ["id", "principal", "roles", "tenant_id", "label", "created_by", "created_at", "expires_at"],
    {
        "id": STRING,
        "principal": STRING,
        "roles": {"type": "array", "items": STRING},
        "tenant_id": NULLABLE_STRING,
        "label": STRING,
        "created_by": STRING,
        "created_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "revoked_at": NULLABLE_TIMESTAMP,
        "last_used_at": NULLABLE_TIMESTAMP,
        "token": {"type": "string", "description": "the bearer token: shown once, at creation"},
    },
)


def token_json(record: TokenRecord, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "principal": record.principal,
        "roles": list(record.roles),
        "tenant_id": record.tenant_id,
        "label": record.label,
        "created_by": record.created_by,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
    }
    if secret is not None:
        body["token"] = secret
    return body


def _new_token_schema(roles: frozenset[Any]) -> dict[str, Any]:
    return obj(
        ["principal", "roles"],
        {
            "principal": {"type": "string", "minLength": 1, "maxLength": 128},
            "roles": {
                "type": "array",
                "items": {"enum": sorted(r.value for r in roles)},
                "minItems": 1,
                "uniqueItems": True,
            },
            "label": {"type": "string", "maxLength": 200},
            "lifetime_days": {"type": "integer", "minimum": 1, "maximum": 366},
        },
    )


async def _create(call: ApiCall, tenant_id: str | None) -> Answer:
    body, services = call.body, call.services
    lifetime = (
        timedelta(days=body["lifetime_days"])
        if "lifetime_days" in body
        else services.token_lifetime
    )
    now = services.clock.now()
    try:
        new = mint_token(
            principal=body["principal"],
            roles=body["roles"],
            tenant_id=tenant_id,
            label=body.get("label", ""),
            created_by=call.principal.token_id,
            now=now,
            lifetime=lifetime,
        )
    except ValueError as exc:
        raise ApiProblem(ApiProblemType.INVALID_REQUEST, str(exc)) from None
    async with services.uow.api() as store:
        await store.add_token(new.record)
    if call.tenant is not None:
        await _event(call, EventType.TOKEN_CREATED, new.record)
    location = _path(call, new.record.id)
    return Answer(token_json(new.record, new.secret), 201, location=location)


def _path(call: ApiCall, token_id: str) -> str:
    base = f"/tenants/{call.scope.slug}/tokens" if call.tenant is not None else "/tokens"
    return f"{base}/{token_id}"


async def _event(call: ApiCall, event: EventType, record: TokenRecord) -> None:
    async with call.services.uow.begin(call.scope) as tx:
        await tx.events.append(
            event,
            object_type="token",
            object_id=record.id,
            actor=call.principal.actor,
            now=call.services.clock.now(),
            principal=record.principal,
            roles=list(record.roles),
        )


async def _list(call: ApiCall, tenant_id: str | None) -> Answer:
    limit = call.query["limit"]
    async with call.services.uow.api(write=False) as store:
        rows = await store.tokens(tenant_id, limit=limit + 1, after=key_after(call.query))
    page, cursor = keyed_page(rows, limit, lambda r: r.id)
    return Answer({"items": [token_json(r) for r in page], "next_cursor": cursor})


async def _revoke(call: ApiCall, tenant_id: str | None) -> Answer:
    token_id, now = call.path("token"), call.services.clock.now()
    async with call.services.uow.api() as store:
        record = await store.token(token_id, lock=True)
        if record is None or record.tenant_id != tenant_id:
            raise not_found("token")
        if not await store.revoke_token(token_id, now):
            raise conflict("token is already revoked")
        revoked = await store.token(token_id)
    assert revoked is not None
    if call.tenant is not None:
        await _event(call, EventType.TOKEN_REVOKED, revoked)
    return Answer(token_json(revoked))


@API.route(
    "GET",
    "/tenants/{tenant}/tokens",
    operation_id="listTenantTokens",
    permission=Permission.TOKENS_READ,
    summary="The tenant's API tokens (never their secrets)",
    response=page_of(TOKEN),
    query=PAGE_PARAMS,
    tag="tokens",
)
async def list_tenant_tokens(call: ApiCall) -> Answer:
    return await _list(call, call.scope.tenant_id)


@API.route(
    "POST",
    "/tenants/{tenant}/tokens",
    operation_id="createTenantToken",
    permission=Permission.TOKENS_WRITE,
    summary="A token with tenant roles; the bearer secret is in this answer only",
    request=_new_token_schema(TENANT_ROLES),
    response=TOKEN,
    status=201,
    tag="tokens",
)
async def create_tenant_token(call: ApiCall) -> Answer:
    return await _create(call, call.scope.tenant_id)


@API.route(
    "POST",
    "/tenants/{tenant}/tokens/{token}/revoke",
    operation_id="revokeTenantToken",
    permission=Permission.TOKENS_WRITE,
    summary="Revoke a tenant token at once",
    response=TOKEN,
    tag="tokens",
)
async def revoke_tenant_token(call: ApiCall) -> Answer:
    return await _revoke(call, call.scope.tenant_id)


@API.route(
    "GET",
    "/tokens",
    operation_id="listPlatformTokens",
    permission=Permission.PLATFORM_TOKENS,
    summary="Platform tokens (never their secrets)",
    response=page_of(TOKEN),
    query=PAGE_PARAMS,
    tag="tokens",
)
async def list_platform_tokens(call: ApiCall) -> Answer:
    return await _list(call, None)


@API.route(
    "POST",
    "/tokens",
    operation_id="createPlatformToken",
    permission=Permission.PLATFORM_TOKENS,
    summary="A token with platform roles; the bearer secret is in this answer only",
    request=_new_token_schema(PLATFORM_ROLES),
    response=TOKEN,
    status=201,
    tag="tokens",
)
async def create_platform_token(call: ApiCall) -> Answer:
    return await _create(call, None)


@API.route(
    "POST",
    "/tokens/{token}/revoke",
    operation_id="revokePlatformToken",
    permission=Permission.PLATFORM_TOKENS,
    summary="Revoke a platform token at once",
    response=TOKEN,
    tag="tokens",
)
async def revoke_platform_token(call: ApiCall) -> Answer:
    return await _revoke(call, None)
