"""newOrder, order fetch, finalize (RFC 8555 §7.4)."""

from __future__ import annotations

from aiohttp import web

from certplane.server.errors import malformed
from certplane.server.model import OrderStatus
from certplane.server.ra.orders import OrderState
from certplane.server.wfe.context import TenantContext, services, tenant_context
from certplane.server.wfe.handlers.common import acme_json
from certplane.server.wfe.jose import b64url_decode
from certplane.server.wfe.jws import KeyMode, acme_post
from certplane.server.wfe.views import order_view


def _order_response(
    state: OrderState, ctx: TenantContext, retry: int, status: int = 200
) -> web.Response:
    retry_after = retry if state.status is OrderStatus.PROCESSING else None
    return acme_json(
        order_view(state, ctx.links),
        status=status,
        location=ctx.links.order(state.order.id),
        retry_after=retry_after,
    )


async def new_order(request: web.Request) -> web.Response:
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        state = await svc.orders.new_order(
            post.tx, ctx.tenant, post.require_account(), post.payload
        )
        return _order_response(state, ctx, svc.config.acme.retry_after_seconds, status=201)


async def order(request: web.Request) -> web.Response:
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        if not post.is_post_as_get:
            raise malformed("fetch an order with POST-as-GET (an empty payload)")
        state = await svc.orders.get_order(
            post.tx, post.require_account(), request.match_info["order_id"]
        )
        return _order_response(state, ctx, svc.config.acme.retry_after_seconds)


async def finalize(request: web.Request) -> web.Response:
    """Accept the CSR in the request's transaction, then wait briefly for the issuance (§7.4)."""
    ctx, svc = tenant_context(request), services(request)
    async with acme_post(request, KeyMode.KID) as post:
        csr = post.payload.get("csr")
        if not isinstance(csr, str):
            raise malformed("finalize requires a csr (base64url DER)")
        acceptance = await svc.issuance.accept(
            post.tx,
            ctx.tenant,
            post.require_account(),
            post.key,
            request.match_info["order_id"],
            b64url_decode(csr, "csr"),
        )
    state = await svc.issuance.complete(acceptance)
    return _order_response(state, ctx, svc.config.acme.retry_after_seconds)
