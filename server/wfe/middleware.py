"""Request middleware (ARCHITECTURE.md §3.1): request id and log record, tenant resolution,
problem rendering, ``Replay-Nonce`` and ``Link: rel="index"`` on every tenant response."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from certplane.ca.errors import CAError
from certplane.server.errors import AcmeProblem, ProblemType, not_found
from certplane.server.storage.scope import TenantScope
from certplane.server.wfe.context import TENANT, TenantContext, services
from certplane.server.wfe.links import Links

log = logging.getLogger("certplane.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBLEM_CONTENT_TYPE = "application/problem+json"
REQUEST_ID = web.RequestKey("request_id", str)

# NOTE(status): router and framework errors become problem documents with these types.
_HTTP_ERRORS: dict[int, tuple[ProblemType, str]] = {
    400: (ProblemType.MALFORMED, "bad request"),
    404: (ProblemType.MALFORMED, "resource not found"),
    405: (ProblemType.MALFORMED, "method not allowed"),
    413: (ProblemType.MALFORMED, "request body too large"),
    415: (ProblemType.MALFORMED, "unsupported media type"),
}


def problem_response(problem: AcmeProblem) -> web.Response:
    response = web.Response(
        status=problem.http_status,
        text=json.dumps(problem.to_json()),
        content_type=PROBLEM_CONTENT_TYPE,
    )
    if problem.retry_after is not None:
        response.headers["Retry-After"] = str(problem.retry_after)
    if problem.location is not None:
        response.headers["Location"] = problem.location
    return response


def _from_http_exception(exc: web.HTTPException) -> AcmeProblem:
    ptype, detail = _HTTP_ERRORS.get(exc.status, (ProblemType.MALFORMED, exc.reason))
    return AcmeProblem(ptype, detail, status=exc.status)


def _internal(request_id: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.SERVER_INTERNAL, f"internal error (request {request_id})")


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one log line, and every exception rendered as a problem document (§6.7)."""
    request_id = secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await _render_errors(request, handler, request_id)
    await _decorate(request, response)
    log.info(
        "%s %s %s %d %.1fms",
        request_id,
        request.method,
        request.path,
        response.status,
        (time.perf_counter() - started) * 1000,
    )
    return response


async def _render_errors(
    request: web.Request, handler: Handler, request_id: str
) -> web.StreamResponse:
    try:
        return await handler(request)
    except AcmeProblem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            return exc
        return problem_response(_from_http_exception(exc))
    except CAError:
        log.exception("%s CA error", request_id)
        return problem_response(_internal(request_id))
    except Exception:
        log.exception("%s unhandled error", request_id)
        return problem_response(_internal(request_id))


@web.middleware
async def tenant_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``/acme/{tenant}/…`` to the tenant's scope; an unknown tenant is a 404."""
    if request.path.startswith("/api/"):  # the management API is not ACME
        return await handler(request)
    slug = request.match_info.get("tenant") or _slug_from_path(request.path)
    if slug is None:
        return await handler(request)
    svc = services(request)
    tenant = await svc.uow.tenants.by_slug(slug)
    if tenant is None:
        raise not_found("tenant")
    links = Links(svc.config.server.base_url, tenant.slug)
    request[TENANT] = TenantContext(tenant, TenantScope(tenant.id, tenant.slug), links)
    return await handler(request)


def _slug_from_path(path: str) -> str | None:
    """The tenant of an unrouted ``/acme/{tenant}/…`` path, so its 404 carries a nonce too."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "acme" and parts[2] else None


async def _decorate(request: web.Request, response: web.StreamResponse) -> None:
    """``Replay-Nonce`` on every tenant response (§6.5) and the directory link (§7.1)."""
    ctx = request.get(TENANT)
    if ctx is None or response.prepared:
        return
    svc = services(request)
    response.headers["Replay-Nonce"] = svc.nonces.issue(ctx.scope.tenant_id, svc.clock.now())
    response.headers.add("Link", f'<{ctx.links.directory}>;rel="index"')
    response.headers.setdefault("Cache-Control", "no-store")
