"""Read queries of the management API over one tenant: accounts, orders, certificates, events.

Every statement starts from ``scoped_select`` (the tenant predicate) and adds the caller's
filters; pages are keyset pages over ``(created_at, id)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, Table, cast

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select

Cursor = tuple[datetime, str]


@dataclass(frozen=True)
class CertificateQuery:
    name: str | None = None  # an exact name, or ".example.com" for every name under it
    status: str | None = None
    issuer_id: str | None = None
    account_id: str | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None


@dataclass(frozen=True)
class EventQuery:
    type: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _after(table: Table, cursor: Cursor | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    stamp, row_id = cursor
    created, ident = table.c.created_at, table.c.id
    return (created > stamp) | ((created == stamp) & (ident > row_id))


def like_literal(text: str) -> str:
    """``text`` matched literally by ``LIKE … ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def name_filter(column: Any, name: str) -> ColumnElement[bool]:
    """Identifiers (stored as a JSON list) holding ``name``, or a name under ``.suffix``."""
    text = cast(column, String)
    if name.startswith("."):
        pattern = f"%{like_literal(json.dumps(name)[1:])}%"  # a value ending in .suffix"
    else:
        pattern = f"%{like_literal(json.dumps({'value': name})[1:-1])}%"
    return text.like(pattern, escape="\\")


class InventoryRepo(ScopedRepo):
    table = t.certificates

    async def _page(
        self, table: Table, filters: Sequence[ColumnElement[bool] | None], cursor: Cursor | None,
        limit: int,
    ) -> list[Mapping[str, Any]]:  # fmt: skip
        stmt: Select[Any] = scoped_select(table)
        for condition in (*filters, _after(table, cursor)):
            if condition is not None:
                stmt = stmt.where(condition)
        stmt = stmt.order_by(table.c.created_at, table.c.id).limit(limit)
        return list(await self._all(stmt))

    async def order(self, order_id: str) -> Mapping[str, Any] | None:
        o = t.orders
        found: Mapping[str, Any] | None = await self._one(
            scoped_select(o).where(o.c.id == order_id)
        )
        return found

    async def certificate(self, cert_id: str) -> Mapping[str, Any] | None:
        c = t.certificates
        found: Mapping[str, Any] | None = await self._one(scoped_select(c).where(c.c.id == cert_id))
        return found

    async def account(self, account_id: str) -> Mapping[str, Any] | None:
        a = t.accounts
        found: Mapping[str, Any] | None = await self._one(
            scoped_select(a).where(a.c.id == account_id)
        )
        return found

    async def accounts(
        self, *, status: str | None, cursor: Cursor | None, limit: int
    ) -> list[Mapping[str, Any]]:
        a = t.accounts
        return await self._page(a, [_eq(a.c.status, status)], cursor, limit)

    async def orders(
        self, *, status: str | None, account_id: str | None, cursor: Cursor | None, limit: int
    ) -> list[Mapping[str, Any]]:
        o = t.orders
        filters = [_eq(o.c.status, status), _eq(o.c.account_id, account_id)]
        return await self._page(o, filters, cursor, limit)

    async def certificates(
        self, query: CertificateQuery, *, cursor: Cursor | None, limit: int
    ) -> list[Mapping[str, Any]]:
        c = t.certificates
        filters = [
            _eq(c.c.status, query.status),
            _eq(c.c.issuer_id, query.issuer_id),
            _eq(c.c.account_id, query.account_id),
            None if query.name is None else name_filter(c.c.identifiers, query.name),
            None if query.expires_after is None else c.c.not_after >= query.expires_after,
            None if query.expires_before is None else c.c.not_after < query.expires_before,
        ]
        return await self._page(c, filters, cursor, limit)

    async def events(
        self, query: EventQuery, *, cursor: Cursor | None, limit: int
    ) -> list[Mapping[str, Any]]:
        e = t.events
        filters = [
            _eq(e.c.type, query.type),
            _eq(e.c.object_type, query.object_type),
            _eq(e.c.object_id, query.object_id),
            None if query.since is None else e.c.created_at >= query.since,
            None if query.until is None else e.c.created_at < query.until,
        ]
        return await self._page(e, filters, cursor, limit)


def _eq(column: Any, value: str | None) -> ColumnElement[bool] | None:
    return None if value is None else column == value
