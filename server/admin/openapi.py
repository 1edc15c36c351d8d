"""The OpenAPI 3.1 document of the management API, built from the endpoint table.

Served at ``/api/v1/openapi.json``. Every operation lists its permission and the roles that hold
it, its parameters with their schemas, its success body and the problem documents of ``4XX``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from certplane.policy.rbac import GRANTS, NEEDS_REASON, Permission
from certplane.server.admin.endpoints import API, Endpoint
from certplane.server.admin.problems import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA
from certplane.server.admin.schemas import SLUG

_PARAM = re.compile(r"{([a-z_]+)}")
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "tenant": SLUG,
    "version": {"type": "string", "pattern": "^[0-9]{1,8}$"},
}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


def roles_holding(permission: Permission) -> list[str]:
    return sorted(role.value for role, granted in GRANTS.items() if permission in granted)


def _description(endpoint: Endpoint) -> str:
    if endpoint.permission is None:
        return endpoint.description or "Public: no token needed."
    roles = roles_holding(endpoint.permission)
    text = f"Permission `{endpoint.permission.value}`, held by: {', '.join(roles)}."
    reasoned = [r.value for r, perms in NEEDS_REASON.items() if endpoint.permission in perms]
    if reasoned:
        text += f" ({', '.join(reasoned)}: only with a `Certplane-Reason` header, recorded.)"
    return f"{endpoint.description}\n\n{text}".strip()


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": PATH_SCHEMAS.get(name, _ID)}
        for name in _PARAM.findall(endpoint.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema,
         "description": q.description}
        for q in endpoint.query
    ]  # fmt: skip
    if endpoint.method == "POST" and endpoint.permission is not None:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "retries with the same key get the first answer again",
            }
        )
    if endpoint.permission is not None and any(
        endpoint.permission in perms for perms in NEEDS_REASON.values()
    ):
        params.append(
            {
                "name": "Certplane-Reason",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 3, "maxLength": 500},
                "description": "support: why this access (recorded as an event)",
            }
        )
    return params


def _request_body(endpoint: Endpoint) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if endpoint.request is not None:
        content["application/json"] = {"schema": endpoint.request}
    for media in endpoint.raw_body:
        content[media] = {"schema": {"type": "string"}}
    if not content:
        return None
    return {"required": True, "content": content}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "description": _description(endpoint),
        "tags": [endpoint.tag] if endpoint.tag else [],
        "parameters": _parameters(endpoint),
        "responses": {
            str(endpoint.status): {
                "description": endpoint.summary,
                "content": {"application/json": {"schema": endpoint.response}},
            },
            "4XX": {
                "description": "a problem document (RFC 9457)",
                "content": {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            },
        },
        "security": [] if endpoint.permission is None else [{"bearer": []}],
    }
    body = _request_body(endpoint)
    if body is not None:
        operation["requestBody"] = body
    return operation


@functools.cache
def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for endpoint in API.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return paths


def openapi_document(base_url: str) -> dict[str, Any]:
    """The whole document; ``servers`` is relative to wherever the API is served."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "certplane management API",
            "version": "1",
            "description": "Tenants, EAB keys, policies, quotas, approvals, inventory, events "
            f"and API tokens of the certplane at {base_url}. Authenticate with "
            "`Authorization: Bearer cpt_…`. Errors are problem documents (RFC 9457); lists "
            "page with `limit` and `cursor`; `Idempotency-Key` makes every POST safe to retry. "
            "Strings with NUL characters or unpaired surrogates are refused (400).",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": PROBLEM_SCHEMA},
        },
        "paths": _paths(),
    }
