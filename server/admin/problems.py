"""Problem documents of the management API (RFC 9457).

Types are URNs under ``urn:certplane:problem:``; ``status`` in the body equals the HTTP status;
``errors`` (RFC 9457 §3.2 extension) lists each offending field as an RFC 6901 JSON pointer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web

PROBLEM_NS = "urn:certplane:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiProblemType(StrEnum):
    INVALID_REQUEST = "invalid-request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    REASON_REQUIRED = "reason-required"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    CONFLICT = "conflict"
    IDEMPOTENCY_MISMATCH = "idempotency-key-reused"
    INVALID_POLICY = "invalid-policy"
    SEPARATION_OF_DUTIES = "separation-of-duties"
    RATE_LIMITED = "rate-limited"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    TOO_LARGE = "request-too-large"
    INTERNAL = "internal"


STATUS: dict[ApiProblemType, int] = {
    ApiProblemType.INVALID_REQUEST: 400,
    ApiProblemType.UNAUTHENTICATED: 401,
    ApiProblemType.FORBIDDEN: 403,
    ApiProblemType.REASON_REQUIRED: 403,
    ApiProblemType.SEPARATION_OF_DUTIES: 403,
    ApiProblemType.NOT_FOUND: 404,
    ApiProblemType.METHOD_NOT_ALLOWED: 405,
    ApiProblemType.CONFLICT: 409,
    ApiProblemType.IDEMPOTENCY_MISMATCH: 422,
    ApiProblemType.INVALID_POLICY: 422,
    ApiProblemType.UNSUPPORTED_MEDIA_TYPE: 415,
    ApiProblemType.TOO_LARGE: 413,
    ApiProblemType.RATE_LIMITED: 429,
    ApiProblemType.INTERNAL: 500,
}

TITLES: dict[ApiProblemType, str] = {
    ApiProblemType.INVALID_REQUEST: "The request is not valid",
    ApiProblemType.UNAUTHENTICATED: "A valid bearer token is required",
    ApiProblemType.FORBIDDEN: "The token's roles do not allow this",
    ApiProblemType.REASON_REQUIRED: "State a reason for this access",
    ApiProblemType.SEPARATION_OF_DUTIES: "Separation of duties forbids this",
    ApiProblemType.NOT_FOUND: "Not found",
    ApiProblemType.METHOD_NOT_ALLOWED: "Method not allowed",
    ApiProblemType.CONFLICT: "The resource is not in a state that allows this",
    ApiProblemType.IDEMPOTENCY_MISMATCH: "Idempotency-Key reused for a different request",
    ApiProblemType.INVALID_POLICY: "The policy document is not valid",
    ApiProblemType.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    ApiProblemType.TOO_LARGE: "Request body too large",
    ApiProblemType.RATE_LIMITED: "Too many requests",
    ApiProblemType.INTERNAL: "Internal error",
}


@dataclass(frozen=True)
class FieldError:
    pointer: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


@dataclass
class ApiProblem(Exception):
    type: ApiProblemType
    detail: str
    errors: Sequence[FieldError] = field(default_factory=tuple)
    retry_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def status(self) -> int:
        return STATUS[self.type]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_NS + self.type.value,
            "title": TITLES[self.type],
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if self.errors:
            doc["errors"] = [e.to_json() for e in self.errors]
        return doc

    def response(self) -> web.Response:
        response = web.Response(
            status=self.status, text=json.dumps(self.to_json()), content_type=PROBLEM_CONTENT_TYPE
        )
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        if self.type is ApiProblemType.UNAUTHENTICATED:
            # RFC 6750 §3: the scheme, and why the presented token (if any) was refused.
            response.headers["WWW-Authenticate"] = 'Bearer realm="certplane"'
        return response


def not_found(what: str) -> ApiProblem:
    """A missing or foreign resource: the two answers cannot be told apart."""
    return ApiProblem(ApiProblemType.NOT_FOUND, f"{what} not found")


def invalid(detail: str, pointer: str | None = None) -> ApiProblem:
    errors = (FieldError(pointer, detail),) if pointer is not None else ()
    return ApiProblem(ApiProblemType.INVALID_REQUEST, detail, errors)


def conflict(detail: str) -> ApiProblem:
    return ApiProblem(ApiProblemType.CONFLICT, detail)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pointer", "detail"],
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
}
