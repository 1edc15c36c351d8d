"""Authorizations and challenges (RFC 8555 §7.5)."""

from __future__ import annotations

from aiohttp import web

from certplane.server.errors import malformed
from certplane.server.wfe.context import services, tenant_context
from certplane.server.wfe.handlers.common import acme_json
from certplane.server.wfe.jws import KeyMode, acme_post
from certplane.server.wfe.views import authz_view, challenge_view


async def authorization(request: web.Request) -> web.Response:
    """POST-as-GET fetches; ``{"status": "deactivated"}`` deactivates (§7.5.2)."""
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        account, authz_id = post.require_account(), request.match_info["authz_id"]
        if post.is_post_as_get:
            state = await svc.authzs.get_authz(post.tx, account, authz_id)
        elif post.payload == {"status": "deactivated"}:
            state = await svc.authzs.deactivate(post.tx, account, authz_id)
        else:
            raise malformed('the only authorization update is {"status": "deactivated"}')
        return acme_json(
            authz_view(state.authz, state.status, ctx.links), location=ctx.links.authz(authz_id)
        )


async def challenge(request: web.Request) -> web.Response:
    """POST-as-GET fetches; an empty object ``{}`` asks for validation (§7.5.1)."""
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        account, challenge_id = post.require_account(), request.match_info["challenge_id"]
        if post.is_post_as_get:
            found = await svc.authzs.get_challenge(post.tx, account, challenge_id)
        elif post.payload == {}:
            found = await svc.authzs.respond(post.tx, account, challenge_id)
        else:
            raise malformed("a challenge response must be an empty JSON object")
        up = f'<{ctx.links.authz(found.authz_id)}>;rel="up"'
        return acme_json(challenge_view(found, ctx.links), links=(up,))
