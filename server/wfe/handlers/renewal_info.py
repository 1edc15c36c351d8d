"""The renewalInfo resource (RFC 9773 §4): a certificate's suggested renewal window.

RFC 9773 §6: renewalInfo "MUST be exposed and accessed via unauthenticated GET requests"
(not POST-as-GET), so that answers can be cached; a POST is 405 like any other wrong method.
"""

from __future__ import annotations

from aiohttp import web

from certplane.server.wfe.context import services, tenant_context
from certplane.server.wfe.handlers.common import acme_json
from certplane.server.wfe.views import renewal_info_view


async def renewal_info(request: web.Request) -> web.Response:
    """The RenewalInfo object (§4.2) with ``Retry-After``, the polling interval (§4.3.1)."""
    ctx, svc = tenant_context(request), services(request)
    acme = svc.config.acme
    window = await svc.renewal_info.renewal_window(ctx.scope, request.match_info["cert_id"])
    response = acme_json(
        renewal_info_view(window, acme.ari_explanation_url),
        retry_after=acme.ari_retry_after_seconds,
    )
    # §6: caching sheds load from clients that poll too often; no answer outlives the interval.
    response.headers["Cache-Control"] = f"public, max-age={acme.ari_retry_after_seconds}"
    return response
