"""The management API application: ``/api/v1`` built from the endpoint table.

For every call, in this order: authenticate the bearer token (401) and spend one call from its
bucket (429); resolve ``{tenant}`` (a tenant token sees only its own tenant: any other is 404);
check the endpoint's permission against the token's roles (403) and, for support, the stated
reason (``Certplane-Reason``, recorded as an event); validate query and body against the
endpoint's schemas (400 with JSON pointers); replay or record ``Idempotency-Key`` answers of
POSTs; run the handler; render every failure as a problem document (RFC 9457).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from aiohttp import web
from jsonschema.protocols import Validator

from certplane.ca.keys.envelope import open_sealed, seal
from certplane.policy.rbac import Permission, allows, needs_reason
from certplane.server.admin import handlers
from certplane.server.admin.auth import Principal, authenticate
from certplane.server.admin.endpoints import API, Answer, ApiCall, Endpoint
from certplane.server.admin.problems import (
    ApiProblem,
    ApiProblemType,
    FieldError,
    invalid,
    not_found,
)
from certplane.server.admin.schemas import UNSTORABLE, storable_text
from certplane.server.admin.services import AdminServices
from certplane.server.model import EventType, Tenant
from certplane.server.storage.api_store import StoredAnswer
from certplane.server.storage.scope import TenantScope

log = logging.getLogger("certplane.api")

ADMIN = web.AppKey("admin", AdminServices)
PREFIX = "/api/v1"
REASON_HEADER = "Certplane-Reason"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_BODY = 256 * 1024
ABANDONED_AFTER = timedelta(minutes=5)
ANONYMOUS = Principal(token_id="", name="anonymous", roles=frozenset(), tenant_id=None)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

handlers.register()


@web.middleware
async def unrouted_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API listener outside /api/v1: router errors as problem documents."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _from_http(exc)


def create_admin_app(services: AdminServices) -> web.Application:
    """The API's routes, relative: mount it at ``PREFIX`` (``add_subapp``)."""
    app = web.Application(middlewares=[problems_middleware], client_max_size=MAX_BODY)
    app[ADMIN] = services
    for endpoint in API.endpoints:
        app.router.add_route(endpoint.method, endpoint.path, _handler(endpoint))
    return app


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a problem document; an unexpected one logged with its request id."""
    request_id = secrets.token_hex(8)
    try:
        response = await handler(request)
    except ApiProblem as problem:
        response = problem.response()
    except web.HTTPException as exc:
        response = _from_http(exc)
    except Exception:
        log.exception("%s unhandled error", request_id)
        internal = ApiProblem(ApiProblemType.INTERNAL, f"internal error (request {request_id})")
        response = internal.response()
    response.headers.setdefault("Cache-Control", "no-store")
    log.info("%s %s %s %d", request_id, request.method, request.path, response.status)
    return response


def _from_http(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc
    kinds = {
        404: (ApiProblemType.NOT_FOUND, "no such endpoint"),
        405: (ApiProblemType.METHOD_NOT_ALLOWED, "method not allowed on this endpoint"),
        413: (ApiProblemType.TOO_LARGE, f"the body exceeds {MAX_BODY} bytes"),
    }
    kind, detail = kinds.get(exc.status, (ApiProblemType.INVALID_REQUEST, exc.reason))
    return ApiProblem(kind, detail).response()


def _handler(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[ADMIN]
        if endpoint.permission is None:
            call = ApiCall(request, services, ANONYMOUS, None, None, {})
            return _render(endpoint, await endpoint.handler(call), services)
        principal = await authenticate(
            services.uow,
            request.headers.get("Authorization"),
            services.clock.now(),
            services.call_limit,
        )
        _path_params(request)
        tenant = await _tenant(request, services, principal, endpoint)
        reason = _authorize(request, principal, endpoint.permission)
        query = _query(request, endpoint)
        raw = await request.read()
        body = _body(request, endpoint, raw)
        call = ApiCall(request, services, principal, tenant, body, query, reason)
        if request.method == "POST" and IDEMPOTENCY_HEADER in request.headers:
            return await _idempotent(call, endpoint, raw)
        return await _run(call, endpoint)

    return handle


async def _run(call: ApiCall, endpoint: Endpoint) -> web.Response:
    answer = await endpoint.handler(call)
    if call.reason is not None and call.tenant is not None:
        await record_support_access(call, call.tenant)
    return _render(endpoint, answer, call.services)


def _render(endpoint: Endpoint, answer: Answer, services: AdminServices) -> web.Response:
    if services.check_responses:
        jsonschema.validate(answer.body, endpoint.response)
    response = web.json_response(answer.body, status=answer.status, dumps=_dumps)
    if answer.location is not None:
        response.headers["Location"] = PREFIX + answer.location
    response.headers.update(answer.headers)
    return response


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- who may call ---------------------------------------------------------------------------


async def _tenant(
    request: web.Request, services: AdminServices, principal: Principal, endpoint: Endpoint
) -> Tenant | None:
    """The ``{tenant}`` of the path; a tenant principal sees only its own (others: 404)."""
    if not endpoint.tenant_scoped:
        return None
    slug = request.match_info["tenant"]
    tenant = await services.uow.tenants.by_slug(slug)
    if tenant is None or (principal.tenant_id is not None and principal.tenant_id != tenant.id):
        raise not_found("tenant")
    return tenant


def _authorize(request: web.Request, principal: Principal, permission: Permission) -> str | None:
    """403 unless a role grants ``permission``; the reason support must state, if any."""
    if not allows(principal.roles, permission):
        roles = ", ".join(sorted(r.value for r in principal.roles))
        raise ApiProblem(
            ApiProblemType.FORBIDDEN,
            f"{permission.value} is not granted to this token's roles ({roles})",
        )
    if not needs_reason(principal.roles, permission):
        return None
    reason = request.headers.get(REASON_HEADER, "").strip()
    if not 3 <= len(reason) <= 500 or not storable_text(reason):
        raise ApiProblem(
            ApiProblemType.REASON_REQUIRED,
            f"support access needs a reason: send the {REASON_HEADER} header (3-500 characters)",
        )
    return reason


async def record_support_access(call: ApiCall, tenant: Tenant) -> None:
    """Support's access to a tenant, with its reason, on the tenant's event log."""
    scope = TenantScope(tenant.id, tenant.slug)
    async with call.services.uow.begin(scope) as tx:
        await tx.events.append(
            EventType.SUPPORT_ACCESS,
            object_type="tenant",
            object_id=tenant.id,
            actor=call.principal.actor,
            now=call.services.clock.now(),
            reason=call.reason,
            method=call.request.method,
            path=call.request.path,
        )


# --- input ------------------------------------------------------------------------------------


def _ecma_regex(pattern: str) -> str:
    """``pattern`` as JSON Schema reads it (ECMA-262): ``$`` is the end of the string. Python's
    ``$`` also matches before a final newline, which would make "alpha\\n" a slug."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
    return "".join(out)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_ecma_regex(pattern))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and _compiled(pattern).search(instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_VALIDATOR: type[Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _pattern}
)


def _errors(schema: dict[str, Any], value: Any, prefix: str) -> list[FieldError]:
    validator = _VALIDATOR(schema, format_checker=_VALIDATOR.FORMAT_CHECKER)
    found = _unstorable(value, prefix)
    for error in validator.iter_errors(value):
        pointer = prefix + "".join(f"/{part}" for part in error.absolute_path)
        found.append(FieldError(pointer, error.message[:300]))
    return sorted(found, key=lambda e: e.pointer)


def _unstorable(value: Any, pointer: str) -> list[FieldError]:
    """Every string (object keys too) that is not ``storable_text``."""
    if isinstance(value, str):
        return [] if storable_text(value) else [FieldError(pointer, UNSTORABLE)]
    if isinstance(value, dict):
        return [
            error
            for key, item in value.items()
            for error in _unstorable(key, pointer) + _unstorable(item, _child(pointer, key))
        ]
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in _unstorable(item, f"{pointer}/{i}")]
    return []


def _child(pointer: str, key: str) -> str:
    """RFC 6901 §3: "~" and "/" in a member name are escaped."""
    return f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"


def _path_params(request: web.Request) -> None:
    """Nothing can be named with text no database stores: 404, as for any unknown name."""
    for name, value in request.match_info.items():
        if not storable_text(value):
            raise not_found(name)


def _query(request: web.Request, endpoint: Endpoint) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems: list[FieldError] = []
    for param in endpoint.query:
        if param.name not in request.query:
            if "default" in param.schema:
                values[param.name] = param.schema["default"]
            continue
        converted = _convert(request.query[param.name], param.schema)
        pointer = f"/query/{param.name}"
        errors = _errors(param.schema, converted, pointer)
        if not errors:
            typed, detail = _typed(converted, param.schema)
            if detail is None:
                values[param.name] = typed
            else:
                errors = [FieldError(pointer, detail)]
        problems += errors
    if problems:
        raise ApiProblem(ApiProblemType.INVALID_REQUEST, problems[0].detail, problems)
    return values


def _convert(text: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


def _typed(value: Any, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The value as handlers use it (date-times parsed), or why it is not acceptable."""
    if schema.get("format") != "date-time" or not isinstance(value, str):
        return value, None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"{value!r} is not an RFC 3339 date-time"
    if stamp.tzinfo is None:
        return None, "a date-time needs a time zone offset"
    try:
        return stamp.astimezone(UTC), None
    except OverflowError:  # 9999-12-31T23:59:59-01:00
        return None, f"{value!r} is out of range"


def _body(request: web.Request, endpoint: Endpoint, raw: bytes) -> Any:
    if endpoint.request is None and not endpoint.raw_body:
        return None
    media = request.content_type
    if media in endpoint.raw_body:
        return _raw_text(raw)
    if media != "application/json":
        accepted = ", ".join(("application/json", *endpoint.raw_body))
        raise ApiProblem(
            ApiProblemType.UNSUPPORTED_MEDIA_TYPE, f"send the body as one of: {accepted}"
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("the body is not valid JSON", "") from None
    if endpoint.request is not None:
        errors = _errors(endpoint.request, body, "")
        if errors:
            raise ApiProblem(ApiProblemType.INVALID_REQUEST, errors[0].detail, errors)
    return body


def _raw_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("the body is not UTF-8 text", "") from None
    if not storable_text(text):
        raise invalid(UNSTORABLE, "")
    return text


# --- Idempotency-Key ----------------------------------------------------------------------------


async def _idempotent(call: ApiCall, endpoint: Endpoint, raw: bytes) -> web.StreamResponse:
    """The first answer to (token, key) for every retry of the same request; the same key
    with another request is refused (422); one still running is a conflict (409)."""
    key = call.request.headers[IDEMPOTENCY_HEADER]
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid(f"{IDEMPOTENCY_HEADER}: expected 1-255 printable characters", "/headers")
    services, token = call.services, call.principal.token_id
    fingerprint = hashlib.sha256(
        f"{call.request.method} {call.request.path_qs}\n".encode() + raw
    ).hexdigest()
    stored = await _claim(services, token, key, fingerprint)
    if stored is not None:
        return _replay(services, stored, fingerprint, token, key)
    response: web.Response
    try:
        response = await _run(call, endpoint)
    except ApiProblem as problem:
        response = problem.response()
    except BaseException:
        async with services.uow.api() as store:
            await store.release_key(token, key)
        raise
    await _remember(services, token, key, fingerprint, response)
    return response


async def _claim(
    services: AdminServices, token: str, key: str, fingerprint: str
) -> StoredAnswer | None:
    """None when this request now owns the key; else the answer stored for it."""
    now = services.clock.now()
    async with services.uow.api() as store:
        if await store.claim_key(token, key, fingerprint, now):
            return None
        stored = await store.stored_answer(token, key)
        assert stored is not None
        created = stored.created_at or now
        expired = created < now - services.idempotency_window
        abandoned = stored.status is None and created < now - ABANDONED_AFTER
        if not (expired or abandoned):
            return stored
        await store.release_key(token, key)
        await store.claim_key(token, key, fingerprint, now)
        return None


def _answer_context(token: str, key: str) -> bytes:
    """The envelope context of a stored answer: bound to its token and key."""
    return b"certplane idempotent answer v1|" + f"{token}|{key}".encode()


def _seal_answer(services: AdminServices, token: str, key: str, text: str) -> str:
    """Answers can hold secrets shown once (a token, an EAB HMAC key): kept sealed."""
    sealed = seal(services.master_key, text.encode(), context=_answer_context(token, key))
    return base64.b64encode(sealed).decode("ascii")


def _open_answer(services: AdminServices, token: str, key: str, stored: str) -> str:
    blob = base64.b64decode(stored)
    return open_sealed(services.master_key, blob, context=_answer_context(token, key)).decode()


def _replay(
    services: AdminServices, stored: StoredAnswer, fingerprint: str, token: str, key: str
) -> web.StreamResponse:
    if stored.request_sha256 != fingerprint:
        raise ApiProblem(
            ApiProblemType.IDEMPOTENCY_MISMATCH,
            f"this {IDEMPOTENCY_HEADER} was used for a different request",
        )
    if stored.status is None:
        raise ApiProblem(
            ApiProblemType.CONFLICT,
            f"a request with this {IDEMPOTENCY_HEADER} is still being processed; retry later",
            retry_after=1,
        )
    body = _open_answer(services, token, key, stored.body) if stored.body else ""
    response = web.Response(status=stored.status, text=body, content_type=stored.content_type)
    if stored.location:
        response.headers["Location"] = stored.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


async def _remember(
    services: AdminServices, token: str, key: str, fingerprint: str, response: web.Response
) -> None:
    """Keep the answer for retries; a 429 or 5xx is not an answer (the retry runs again)."""
    async with services.uow.api() as store:
        if response.status == 429 or response.status >= 500:
            await store.release_key(token, key)
            return
        answer = StoredAnswer(
            request_sha256=fingerprint,
            status=response.status,
            body=_seal_answer(services, token, key, response.text or ""),
            content_type=response.content_type,
            location=response.headers.get("Location"),
        )
        await store.store_answer(token, key, answer)
