"""Scoped repositories: every statement derives from a base filtered by the scope's tenant.

NOTE(tenancy): there is no way to build a statement here without the tenant predicate; inserts
stamp ``tenant_id`` from the scope. A foreign row is indistinguishable from a missing one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Select, Table, Update, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from certplane.server.storage.scope import TenantScope


class ScopedRepo:
    """Base for a repository over one tenant-owned table."""

    table: Table

    def __init__(self, conn: AsyncConnection, scope: TenantScope) -> None:
        self._conn = conn
        self._scope = scope

    @property
    def tenant_id(self) -> str:
        return self._scope.tenant_id

    def _select(self, table: Table | None = None) -> Select[Any]:
        table = self.table if table is None else table
        return select(table).where(table.c.tenant_id == self.tenant_id)

    def _update(self, table: Table | None = None) -> Update:
        table = self.table if table is None else table
        return update(table).where(table.c.tenant_id == self.tenant_id)

    def _delete(self, table: Table | None = None) -> Delete:
        table = self.table if table is None else table
        return delete(table).where(table.c.tenant_id == self.tenant_id)

    async def _insert(self, table: Table | None = None, /, **values: Any) -> None:
        table = self.table if table is None else table
        await self._conn.execute(insert(table).values(tenant_id=self.tenant_id, **values))

    async def _one(self, stmt: Select[Any]) -> Any:
        return (await self._conn.execute(stmt)).mappings().first()

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        return list((await self._conn.execute(stmt)).mappings().all())

    async def _write(self, stmt: Update | Delete) -> int:
        result = await self._conn.execute(stmt)
        return int(result.rowcount)
