"""ACME problem types and the one exception the ACME layer raises (RFC 8555 §6.7, RFC 9457).

Only the server package speaks in problem documents. ``policy`` and ``ca`` raise their own
exceptions; ``certplane.server.wfe.problems`` maps them here, in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ACME_ERROR_NS = "urn:ietf:params:acme:error:"


class ProblemType(StrEnum):
    """The registered ACME error types (RFC 8555 §6.7, RFC 9773 §7)."""

    ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
    ALREADY_REPLACED = "alreadyReplaced"
    ALREADY_REVOKED = "alreadyRevoked"
    BAD_CSR = "badCSR"
    BAD_NONCE = "badNonce"
    BAD_PUBLIC_KEY = "badPublicKey"
    BAD_REVOCATION_REASON = "badRevocationReason"
    BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
    CAA = "caa"
    COMPOUND = "compound"
    CONNECTION = "connection"
    DNS = "dns"
    EXTERNAL_ACCOUNT_REQUIRED = "externalAccountRequired"
    INCORRECT_RESPONSE = "incorrectResponse"
    INVALID_CONTACT = "invalidContact"
    MALFORMED = "malformed"
    ORDER_NOT_READY = "orderNotReady"
    RATE_LIMITED = "rateLimited"
    REJECTED_IDENTIFIER = "rejectedIdentifier"
    SERVER_INTERNAL = "serverInternal"
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_CONTACT = "unsupportedContact"
    UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"
    USER_ACTION_REQUIRED = "userActionRequired"

    @property
    def urn(self) -> str:
        return ACME_ERROR_NS + self.value


# NOTE(status): the HTTP status each type carries unless a raise site says otherwise
# (ARCHITECTURE.md §5, following Boulder and Pebble).
DEFAULT_STATUS: dict[ProblemType, int] = {
    ProblemType.ACCOUNT_DOES_NOT_EXIST: 400,
    ProblemType.ALREADY_REPLACED: 409,
    ProblemType.ALREADY_REVOKED: 400,
    ProblemType.BAD_CSR: 400,
    ProblemType.BAD_NONCE: 400,
    ProblemType.BAD_PUBLIC_KEY: 400,
    ProblemType.BAD_REVOCATION_REASON: 400,
    ProblemType.BAD_SIGNATURE_ALGORITHM: 400,
    ProblemType.CAA: 403,
    ProblemType.COMPOUND: 403,
    ProblemType.CONNECTION: 400,
    ProblemType.DNS: 400,
    ProblemType.EXTERNAL_ACCOUNT_REQUIRED: 403,
    ProblemType.INCORRECT_RESPONSE: 403,
    ProblemType.INVALID_CONTACT: 400,
    ProblemType.MALFORMED: 400,
    ProblemType.ORDER_NOT_READY: 403,
    ProblemType.RATE_LIMITED: 429,
    ProblemType.REJECTED_IDENTIFIER: 400,
    ProblemType.SERVER_INTERNAL: 500,
    ProblemType.TLS: 400,
    ProblemType.UNAUTHORIZED: 403,
    ProblemType.UNSUPPORTED_CONTACT: 400,
    ProblemType.UNSUPPORTED_IDENTIFIER: 400,
    ProblemType.USER_ACTION_REQUIRED: 403,
}


@dataclass(frozen=True)
class Subproblem:
    """One identifier's part of a compound problem (RFC 8555 §6.7.1)."""

    type: ProblemType
    detail: str
    identifier: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type.urn, "detail": self.detail}
        if self.identifier is not None:
            doc["identifier"] = dict(self.identifier)
        return doc


@dataclass
class AcmeProblem(Exception):
    """A problem document (RFC 9457) that is also the exception the ACME layer raises."""

    type: ProblemType
    detail: str
    status: int | None = None
    subproblems: Sequence[Subproblem] = field(default_factory=tuple)
    retry_after: int | None = None
    algorithms: Sequence[str] | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else DEFAULT_STATUS[self.type]

    def to_json(self) -> dict[str, Any]:
        """Render the RFC 9457 body; ``status`` in the body always equals the HTTP status."""
        doc: dict[str, Any] = {
            "type": self.type.urn,
            "detail": self.detail,
            "status": self.http_status,
        }
        if self.subproblems:
            doc["subproblems"] = [sub.to_json() for sub in self.subproblems]
        if self.algorithms is not None:
            doc["algorithms"] = list(self.algorithms)
        return doc


def malformed(detail: str, status: int | None = None) -> AcmeProblem:
    return AcmeProblem(ProblemType.MALFORMED, detail, status)


def not_found(what: str = "resource") -> AcmeProblem:
    """The one answer for a missing *or foreign* resource: tenants cannot tell them apart."""
    return AcmeProblem(ProblemType.MALFORMED, f"{what} not found", 404)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.UNAUTHORIZED, detail)
