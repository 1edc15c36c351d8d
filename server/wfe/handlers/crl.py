"""The CRL distribution point (RFC 5280 §4.2.1.13): DER over plain GET, cacheable until its
nextUpdate (revocations also regenerate it at once for the next fetch)."""

from __future__ import annotations

from email.utils import format_datetime

from aiohttp import web

from certplane.server.wfe.context import services, tenant_context

PKIX_CRL = "application/pkix-crl"


async def crl(request: web.Request) -> web.Response:
    ctx, svc = tenant_context(request), services(request)
    document = await svc.crls.crl(ctx.scope, request.match_info["issuer_id"])
    max_age = max(0, int((document.next_update - svc.clock.now()).total_seconds()))
    return web.Response(
        body=document.der,
        content_type=PKIX_CRL,
        headers={
            "Cache-Control": f"public, max-age={max_age}, no-transform",
            "Last-Modified": format_datetime(document.this_update, usegmt=True),
            "Expires": format_datetime(document.next_update, usegmt=True),
        },
    )
