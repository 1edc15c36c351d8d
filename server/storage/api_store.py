"""Management API records that belong to no tenant's request path: API tokens and
Idempotency-Key answers. Reached only by the management API (``server/admin``).

NOTE(tenancy): a token is looked up by its id before its tenant is known; every other question
about a tenant token is asked with the tenant id as well, so a tenant admin cannot list or
revoke another tenant's tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from certplane.server.storage import tables as t
from certplane.server.storage.db import DbConnection

_tok = t.api_tokens
_idem = t.idempotency_keys


@dataclass(frozen=True)
class TokenRecord:
    id: str
    tenant_id: str | None
    principal: str
    roles: tuple[str, ...]
    label: str
    secret_sha256: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    calls_tat: datetime | None


def _token(row: Mapping[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        principal=row["principal"],
        roles=tuple(row["roles"]),
        label=row["label"],
        secret_sha256=row["secret_sha256"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        calls_tat=row["calls_tat"],
    )


_INSERT_TOKEN = insert(_tok)
_BY_ID = select(_tok).where(_tok.c.id == bindparam("w_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()
_USED = update(_tok).where(_tok.c.id == bindparam("w_id"))


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer given to an Idempotency-Key; status None: still being worked on."""

    request_sha256: str
    status: int | None
    body: str | None
    content_type: str | None
    location: str | None
    created_at: datetime | None = None


_IDEM_KEY = and_(_idem.c.token_id == bindparam("w_token"), _idem.c.key == bindparam("w_key"))
_IDEM_CLAIM: dict[str, Any] = {
    "sqlite": sqlite.insert(_idem).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(_idem).on_conflict_do_nothing(),
}


class ApiStore:
    """Tokens and idempotency records, inside one transaction."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn

    async def token(self, token_id: str, *, lock: bool = False) -> TokenRecord | None:
        stmt = _BY_ID_LOCKED if lock else _BY_ID
        row = (await self._conn.execute(stmt, {"w_id": token_id})).mappings().first()
        return None if row is None else _token(row)

    async def add_token(self, record: TokenRecord) -> None:
        values = {f: getattr(record, f) for f in record.__dataclass_fields__}
        values["roles"] = list(record.roles)
        await self._conn.execute(_INSERT_TOKEN, values)

    async def tokens(self, tenant_id: str | None, *, limit: int, after: str | None) -> list[Any]:
        """Tokens of one tenant (None: the platform's), oldest first, a page after ``after``."""
        owner = _tok.c.tenant_id.is_(None) if tenant_id is None else _tok.c.tenant_id == tenant_id
        stmt = select(_tok).where(owner).order_by(_tok.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(_tok.c.id > after)
        return [_token(r) for r in (await self._conn.execute(stmt)).mappings().all()]

    async def record_use(self, token_id: str, now: datetime, calls_tat: datetime) -> None:
        await self._conn.execute(
            _USED, {"w_id": token_id, "last_used_at": now, "calls_tat": calls_tat}
        )

    async def revoke_token(self, token_id: str, now: datetime) -> bool:
        stmt = update(_tok).where(_tok.c.id == token_id, _tok.c.revoked_at.is_(None))
        result = await self._conn.execute(stmt.values(revoked_at=now))
        return int(result.rowcount) == 1

    async def claim_key(self, token_id: str, key: str, request_sha256: str, now: datetime) -> bool:
        """Record that (token, key) is being worked on; False when it already was."""
        claim = _IDEM_CLAIM[self._conn.dialect.name]
        values = {
            "token_id": token_id,
            "key": key,
            "request_sha256": request_sha256,
            "created_at": now,
        }
        return int((await self._conn.execute(claim, values)).rowcount) == 1

    async def stored_answer(self, token_id: str, key: str) -> StoredAnswer | None:
        stmt = select(_idem).where(_IDEM_KEY)
        params = {"w_token": token_id, "w_key": key}
        row = (await self._conn.execute(stmt, params)).mappings().first()
        if row is None:
            return None
        return StoredAnswer(
            row["request_sha256"],
            row["status"],
            row["body"],
            row["content_type"],
            row["location"],
            row["created_at"],
        )

    async def store_answer(self, token_id: str, key: str, answer: StoredAnswer) -> None:
        stmt = update(_idem).where(_IDEM_KEY)
        params = {
            "w_token": token_id,
            "w_key": key,
            "status": answer.status,
            "body": answer.body,
            "content_type": answer.content_type,
            "location": answer.location,
        }
        await self._conn.execute(stmt, params)

    async def release_key(self, token_id: str, key: str) -> None:
        """Forget a claim whose request failed without an answer worth replaying."""
        params = {"w_token": token_id, "w_key": key}
        await self._conn.execute(delete(_idem).where(_IDEM_KEY), params)

    async def prune_keys(self, before: datetime) -> int:
        result = await self._conn.execute(delete(_idem).where(_idem.c.created_at < before))
        return int(result.rowcount)
