"""Bearer API tokens (RFC 6750): random, shown once, stored as a SHA-256, expiring, revocable.

A token reads ``cpt_<id>_<secret>``: the id finds the record, the 256-bit secret proves it.
Only SHA-256(secret) is stored (a fast hash is enough for a uniformly random 256-bit secret: there
is no dictionary to try). Unknown id, wrong secret, expired and revoked tokens get one answer.
Each use spends from the token's GCRA bucket of API calls, in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from certplane.policy.ratelimits.gcra import Limit, maybe_spend
from certplane.policy.rbac import Role, parse_roles
from certplane.server.admin.problems import ApiProblem, ApiProblemType
from certplane.server.storage.api_store import TokenRecord
from certplane.server.storage.scope import new_id
from certplane.server.storage.uow import UnitOfWork

TOKEN_PREFIX = "cpt_"  # noqa: S105 (a public prefix, not a secret)
_TOKEN = re.compile(r"^cpt_([A-Za-z0-9_-]{22})_([A-Za-z0-9_-]{43})$")
MAX_LIFETIME = timedelta(days=366)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named person or system with roles on the platform or in one tenant."""

    token_id: str
    name: str
    roles: frozenset[Role]
    tenant_id: str | None

    @property
    def on_platform(self) -> bool:
        return self.tenant_id is None

    @property
    def actor(self) -> str:
        """How events name this principal."""
        return f"api:{self.name}"


@dataclass(frozen=True)
class NewToken:
    record: TokenRecord
    secret: str  # the whole bearer token, shown once


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def mint_token(
    *,
    principal: str,
    roles: list[str],
    tenant_id: str | None,
    label: str,
    created_by: str,
    now: datetime,
    lifetime: timedelta,
) -> NewToken:
    """A new token record and its secret.

    Raises:
        ValueError: bad roles for the level, an empty principal, or a lifetime out of range.
    """
    parse_roles(roles, platform=tenant_id is None)
    if not principal.strip() or len(principal) > 128:
        raise ValueError("principal: expected 1-128 characters")
    if not timedelta(minutes=1) <= lifetime <= MAX_LIFETIME:
        raise ValueError("lifetime: expected between 1 minute and 366 days")
    token_id = new_id()
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        id=token_id,
        tenant_id=tenant_id,
        principal=principal.strip(),
        roles=tuple(sorted(set(roles))),
        label=label,
        secret_sha256=_digest(secret),
        created_by=created_by,
        created_at=now,
        expires_at=now + lifetime,
        revoked_at=None,
        last_used_at=None,
        calls_tat=None,
    )
    return NewToken(record, f"{TOKEN_PREFIX}{token_id}_{secret}")


def _unauthenticated(detail: str = "the bearer token is missing, unknown, expired or revoked") -> (
    ApiProblem
):  # fmt: skip
    return ApiProblem(ApiProblemType.UNAUTHENTICATED, detail)


def bearer_of(header: str | None) -> tuple[str, str]:
    """(token id, secret) from an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    if header is None:
        raise _unauthenticated("an Authorization: Bearer token is required")
    scheme, _, value = header.partition(" ")
    match = _TOKEN.match(value.strip()) if scheme.lower() == "bearer" else None
    if match is None:
        raise _unauthenticated()
    return match.group(1), match.group(2)


async def authenticate(
    uow: UnitOfWork, header: str | None, now: datetime, call_limit: Limit | None
) -> Principal:
    """The principal of a valid token, after spending one API call from its bucket.

    Raises:
        ApiProblem: unauthenticated (401) or rate-limited (429, with Retry-After).
    """
    token_id, secret = bearer_of(header)
    async with uow.api() as store:
        record = await store.token(token_id, lock=True)
        if record is None or not hmac.compare_digest(record.secret_sha256, _digest(secret)):
            raise _unauthenticated()
        if record.revoked_at is not None or record.expires_at <= now:
            raise _unauthenticated()
        calls_tat = _spend_call(record, now, call_limit)
        await store.record_use(token_id, now, calls_tat)
    platform = record.tenant_id is None
    return Principal(
        token_id=record.id,
        name=record.principal,
        roles=parse_roles(list(record.roles), platform=platform),
        tenant_id=record.tenant_id,
    )


def _spend_call(record: TokenRecord, now: datetime, limit: Limit | None) -> datetime:
    """The token's new call TAT, or rate-limited (429) naming the limit."""
    if limit is None:
        return record.calls_tat or now
    decision = maybe_spend(limit, record.calls_tat, 1, now)
    if not decision.allowed:
        retry = max(1, math.ceil(decision.retry_in.total_seconds()))
        raise ApiProblem(
            ApiProblemType.RATE_LIMITED,
            f"limit api-calls-per-token ({limit.count} per {int(limit.period.total_seconds())}s) "
            f"reached; retry in {retry}s",
            retry_after=retry,
        )
    return decision.tat
