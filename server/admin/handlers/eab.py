"""External Account Binding keys (RFC 8555 §7.3.4): the HMAC key is shown once, at creation."""

from __future__ import annotations

from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.app_support import provisioning_errors
from certplane.server.admin.endpoints import API, Answer, ApiCall
from certplane.server.admin.schemas import (
    NULLABLE_STRING,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    key_after,
    keyed_page,
    obj,
    page_of,
)
from certplane.server.admin.views import eab_json

EAB_KEY: dict[str, Any] = obj(
    ["kid", "label", "status", "account_id", "created_at", "created_by"],
    {
        "kid": STRING,
        "label": STRING,
        "status": {"enum": ["unbound", "bound", "revoked"]},
        "account_id": NULLABLE_STRING,
        "created_at": TIMESTAMP,
        "created_by": STRING,
    },
)
NEW_EAB_KEY = obj(
    ["kid", "hmac_key", "label", "directory"],
    {"kid": STRING, "hmac_key": STRING, "label": STRING, "directory": STRING},
)


@API.route(
    "GET",
    "/tenants/{tenant}/eab-keys",
    operation_id="listEabKeys",
    permission=Permission.EAB_READ,
    summary="The tenant's EAB keys (never their HMAC keys)",
    response=page_of(EAB_KEY),
    query=PAGE_PARAMS,
    tag="eab",
)
async def list_eab_keys(call: ApiCall) -> Answer:
    after = key_after(call.query)
    with provisioning_errors():
        keys = await call.services.provisioner.list_eab(call.scope.slug)
    keys = sorted((k for k in keys if after is None or k.kid > after), key=lambda k: k.kid)
    page, cursor = keyed_page(keys, call.query["limit"], lambda k: k.kid)
    return Answer({"items": [eab_json(k) for k in page], "next_cursor": cursor})


@API.route(
    "POST",
    "/tenants/{tenant}/eab-keys",
    operation_id="createEabKey",
    permission=Permission.EAB_CREATE,
    summary="A single-use EAB key; its HMAC key is in this answer and nowhere else, ever",
    request=obj([], {"label": {"type": "string", "maxLength": 200}}),
    response=NEW_EAB_KEY,
    status=201,
    tag="eab",
)
async def create_eab_key(call: ApiCall) -> Answer:
    label = call.body.get("label", "")
    with provisioning_errors():
        created = await call.services.provisioner.create_eab(
            call.scope.slug, label, actor=call.principal.actor
        )
    directory = f"{call.services.config.server.base_url}/acme/{call.scope.slug}/directory"
    body = {
        "kid": created.kid,
        "hmac_key": created.hmac_key,
        "label": label,
        "directory": directory,
    }
    return Answer(body, 201, location=f"/tenants/{call.scope.slug}/eab-keys/{created.kid}")


@API.route(
    "POST",
    "/tenants/{tenant}/eab-keys/{kid}/revoke",
    operation_id="revokeEabKey",
    permission=Permission.EAB_REVOKE,
    summary="Revoke an unbound EAB key (a bound key is used up already)",
    response=obj(["kid", "status"], {"kid": STRING, "status": STRING}),
    tag="eab",
)
async def revoke_eab_key(call: ApiCall) -> Answer:
    kid = call.path("kid")
    with provisioning_errors():
        await call.services.provisioner.revoke_eab(call.scope.slug, kid, actor=call.principal.actor)
    return Answer({"kid": kid, "status": "revoked"})
