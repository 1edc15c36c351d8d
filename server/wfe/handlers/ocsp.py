"""The OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019 §5–§6): GET and POST.

Protocol errors are OCSP responses (``malformedRequest``, ``unauthorized``) with HTTP 200, as
clients expect; only a wrong method or media type is an HTTP error (a problem document).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from email.utils import format_datetime
from urllib.parse import unquote

from aiohttp import web
from cryptography.x509 import ocsp

from certplane.ca.ocsp import unsuccessful
from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.wfe.context import services, tenant_context

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
MAX_REQUEST_BYTES = 4096
_MALFORMED = unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


async def ocsp_get(request: web.Request) -> web.Response:
    """GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest} (Appendix A.1)."""
    der = _decode_get(request.match_info["request"])
    return await _answer(request, der, cacheable=True)


async def ocsp_post(request: web.Request) -> web.Response:
    if request.content_type != OCSP_REQUEST:
        raise AcmeProblem(ProblemType.MALFORMED, f"Content-Type must be {OCSP_REQUEST}", status=415)
    body = await request.content.read(MAX_REQUEST_BYTES + 1)
    der = body if len(body) <= MAX_REQUEST_BYTES else None
    return await _answer(request, der, cacheable=False)


def _decode_get(text: str) -> bytes | None:
    raw = unquote(text)
    if len(raw) > MAX_REQUEST_BYTES * 2:
        return None
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


async def _answer(request: web.Request, der: bytes | None, *, cacheable: bool) -> web.Response:
    ctx, svc = tenant_context(request), services(request)
    if der is None:
        result = _MALFORMED
    else:
        result = await svc.ocsp.respond(ctx.scope, request.match_info["issuer_id"], der)
    response = web.Response(body=result.der, content_type=OCSP_RESPONSE)
    if cacheable and result.next_update is not None and result.this_update is not None:
        max_age = max(0, int((result.next_update - svc.clock.now()).total_seconds()))
        response.headers.update(
            {
                "Cache-Control": f"public, max-age={max_age}, no-transform, must-revalidate",
                "Last-Modified": format_datetime(result.this_update, usegmt=True),
                "Expires": format_datetime(result.next_update, usegmt=True),
                "ETag": '"' + hashlib.sha256(result.der).hexdigest()[:32] + '"',
            }
        )
    return response
