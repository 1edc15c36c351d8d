"""Issuer documents over plain GET: the CRL at the distribution point (RFC 5280 §4.2.1.13),
cacheable until its nextUpdate (a revocation regenerates it at once for the next fetch), and
the issuer certificate at the AIA caIssuers URL (§4.2.2.1)."""

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


async def ca_certificate(request: web.Request) -> web.Response:
    """The issuer certificate as DER, at the AIA caIssuers URL of its leaves (RFC 5280
    §4.2.2.1), so clients missing an intermediate can fetch it."""
    ctx, svc = tenant_context(request), services(request)
    der = await svc.crls.issuer_certificate(ctx.scope, request.match_info["issuer_id"])
    return web.Response(
        body=der,
        content_type="application/pkix-cert",
        headers={"Cache-Control": "public, max-age=86400"},
    )
