"""Engine creation for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg), one code path.

NOTE(sqlite-writes): SQLite allows one writer. Write transactions start with ``BEGIN IMMEDIATE``
and, inside one process, queue on an asyncio lock so that no transaction ever has to upgrade a
read lock (the case SQLite answers with SQLITE_BUSY at once). Across processes SQLite's own
busy timeout does the queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """The engine plus the per-dialect transaction discipline."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine: AsyncEngine = _create_engine(url, echo=echo, sqlite=self.is_sqlite)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction that commits on success, rolls back otherwise."""
        lock = self._write_lock if write else None
        async with _maybe(lock), self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(certplane_write=write)
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
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
    engine = create_async_engine(
        url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("certplane_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
