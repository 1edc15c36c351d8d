"""Directory and newNonce (RFC 8555 §7.1.1, §7.2; RFC 9773 §3)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from certplane.server.wfe.context import services, tenant_context
from certplane.server.wfe.handlers.common import acme_json


async def directory(request: web.Request) -> web.Response:
    ctx, svc = tenant_context(request), services(request)
    config, links = svc.config, ctx.links
    meta: dict[str, Any] = {"externalAccountRequired": ctx.tenant.external_account_required}
    if config.acme.terms_of_service:
        meta["termsOfService"] = config.acme.terms_of_service
    if config.acme.website:
        meta["website"] = config.acme.website
    if config.acme.caa_identities:
        meta["caaIdentities"] = list(config.acme.caa_identities)
    profiles = await svc.policies.profiles(ctx.scope, ctx.tenant.policy_version)
    if profiles is not None:  # draft-ietf-acme-profiles: name -> description
        meta["profiles"] = profiles
    # certplane's extension (RFC 8555 §7.1.1 allows more meta fields): agents report here.
    meta["certplaneInventory"] = links.inventory
    body = {
        "newNonce": links.new_nonce,
        "newAccount": links.new_account,
        "newOrder": links.new_order,
        "revokeCert": links.revoke_cert,
        "keyChange": links.key_change,
        "renewalInfo": links.renewal_info,  # RFC 9773 §3
        "meta": meta,
    }
    response = acme_json(body)
    response.headers["Cache-Control"] = "public, max-age=0, no-cache"
    return response


async def new_nonce(request: web.Request) -> web.Response:
    """HEAD answers 200, GET 204; the middleware adds the nonce (§7.2)."""
    status = 200 if request.method == "HEAD" else 204
    return web.Response(status=status, headers={"Cache-Control": "no-store"})
