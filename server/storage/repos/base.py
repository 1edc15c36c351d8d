"""Scoped repositories: every statement derives from a base filtered by the scope's tenant.

Statements are built once, at import, and executed with parameters: building and cache-keying
a SQLAlchemy statement costs more than SQLite takes to run it.

NOTE(tenancy): a statement can only be built here from ``scoped_select``, ``scoped_update`` or
``scoped_delete``, whose ``tenant_id`` predicate is the bind parameter ``TENANT_PARAM``, and
``ScopedRepo`` binds it from its scope on every execution (a statement run without it fails:
SQLAlchemy refuses a missing bind value). Inserts stamp ``tenant_id`` from the scope. A foreign
row is indistinguishable from a missing one.
NOTE(where-params): in an UPDATE, execution parameters named like a column become SET values,
so WHERE parameters are named ``w_…`` and never collide with a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    FromClause,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from certplane.server.storage.db import DbConnection
from certplane.server.storage.scope import TenantScope

TENANT_PARAM = "scope_tenant_id"


def tenant_of(table: FromClause) -> ColumnElement[bool]:
    """``table.tenant_id = :scope_tenant_id``: the predicate every statement starts from."""
    return table.c.tenant_id == bindparam(TENANT_PARAM)


def scoped_select(table: FromClause, *columns: Any) -> Select[Any]:
    """``SELECT`` of ``columns`` (default: every column) from ``table`` of the scope's tenant."""
    return select(*(columns or (table,))).where(tenant_of(table))


def scoped_update(table: Table) -> Update:
    """``UPDATE`` of ``table`` rows of the scope's tenant; SET columns come from the parameters."""
    return update(table).where(tenant_of(table))


def scoped_delete(table: Table) -> Delete:
    return delete(table).where(tenant_of(table))


def w(name: str, expanding: bool = False) -> Any:
    """A WHERE bind parameter (``w_<name>``), never mistaken for a SET value."""
    return bindparam(f"w_{name}", expanding=expanding)


_INSERTS: dict[str, Insert] = {}


def _insert_of(table: Table) -> Insert:
    stmt = _INSERTS.get(table.name)
    if stmt is None:
        stmt = _INSERTS[table.name] = insert(table)
    return stmt


class ScopedRepo:
    """Base for a repository over one tenant-owned table."""

    table: Table

    def __init__(self, conn: DbConnection, scope: TenantScope) -> None:
        self._conn = conn
        self._scope = scope

    @property
    def tenant_id(self) -> str:
        return self._scope.tenant_id

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        params[TENANT_PARAM] = self._scope.tenant_id
        return params

    async def _one(self, stmt: Select[Any], **params: Any) -> Any:
        result = await self._conn.execute(stmt, self._params(params))
        return result.mappings().first()

    async def _all(self, stmt: Select[Any], **params: Any) -> Sequence[Any]:
        result = await self._conn.execute(stmt, self._params(params))
        return result.mappings().all()

    async def _write(self, stmt: Update | Delete, **params: Any) -> int:
        result = await self._conn.execute(stmt, self._params(params))
        return int(result.rowcount)

    async def _insert(self, table: Table | None = None, /, **values: Any) -> None:
        table = self.table if table is None else table
        await self._conn.execute(_insert_of(table), {**values, "tenant_id": self.tenant_id})

    async def _insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """One ``executemany`` for several rows of ``table``, each stamped with the tenant."""
        if rows:
            stamped = [{**row, "tenant_id": self.tenant_id} for row in rows]
            await self._conn.execute(_insert_of(table), stamped)
