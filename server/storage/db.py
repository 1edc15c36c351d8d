"""Engine creation for SQLite (WAL) and PostgreSQL (asyncpg), one code path above this module.

Repositories see a ``DbConnection``: an ``execute`` and a dialect. On PostgreSQL it is SQLAlchemy's
``AsyncConnection``; on SQLite a plain ``Connection`` whose statements run inline on the loop
thread (``storage/sqlite_inline.py``; configured URLs keep naming ``sqlite+aiosqlite``).

NOTE(sqlite-writes): SQLite allows one writer. Write transactions start with ``BEGIN IMMEDIATE``
and, inside one process, queue on an asyncio lock so that no transaction ever has to upgrade a
read lock (the case SQLite answers with SQLITE_BUSY at once). Across processes a busy
``BEGIN IMMEDIATE`` is retried after an asyncio sleep (``storage/sqlite_inline.py``): SQLite runs
on the event loop's thread, so nothing may wait inside the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from certplane.server.storage.sqlite_fast import FastExecutor
from certplane.server.storage.sqlite_inline import InlineTransactions, inline_url

# One row of parameters, several (an executemany), or none.
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Rows(Protocol):
    def first(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...


class StatementResult(Protocol):
    """The part of a result the repositories use: mapping rows and the row count."""

    @property
    def rowcount(self) -> int: ...

    def mappings(self) -> Rows: ...


class DbConnection(Protocol):
    """What repositories see of a connection inside a unit of work: a dialect and ``execute``."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Params = None
    ) -> StatementResult: ...


class _InlineConnection:
    """A synchronous connection whose statements run on the loop thread (SQLite)."""

    __slots__ = ("_conn", "_fast")

    def __init__(self, conn: Connection, fast: FastExecutor) -> None:
        self._conn = conn
        self._fast = fast

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Params = None) -> StatementResult:
        if self._fast.handles(statement, parameters):
            return self._fast.execute(self._conn, statement, parameters)
        return self._conn.execute(statement, parameters)


class _AsyncConnection:
    """An ``AsyncConnection`` of an async driver (PostgreSQL over asyncpg)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Params = None) -> StatementResult:
        return await self._conn.execute(statement, parameters)


class Database:
    """The engine plus the per-dialect transaction discipline."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine: AsyncEngine = _create_engine(url, echo=echo, sqlite=self.is_sqlite)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._inline = InlineTransactions(self.engine.sync_engine) if self.is_sqlite else None
        self._fast = FastExecutor(self.engine.dialect)

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[DbConnection]:
        """A connection inside a transaction that commits on success, rolls back otherwise."""
        if self._inline is None:
            async with self.engine.connect() as conn, conn.begin():
                yield _AsyncConnection(conn)
            return
        async with (
            _maybe(self._write_lock if write else None),
            self._inline.transaction(write=write) as inline,
        ):
            yield _InlineConnection(inline, self._fast)

    async def dispose(self) -> None:
        if self._inline is not None:
            self._inline.close()
        await self.engine.dispose()


@contextlib.asynccontextmanager
async def _maybe(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    if lock is None:
        yield
        return
    async with lock:
        yield


def _create_engine(url: str, *, echo: bool, sqlite: bool) -> AsyncEngine:
    if not sqlite:
        return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10)
    return create_async_engine(inline_url(make_url(url)), echo=echo)
