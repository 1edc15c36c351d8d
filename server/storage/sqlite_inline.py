"""SQLite on the event loop's own thread: the standard ``sqlite3`` driver behind the async engine.

SQLAlchemy's aiosqlite adapter hands every driver call (cursor, execute, fetch, close, commit)
to a worker thread and back: about four thread hops per statement, each costing far more CPU
than the statement itself. Here the pysqlite dialect is declared ``is_async`` and a unit of work
runs its statements on a plain SQLAlchemy ``Connection``, inline: a statement costs what
SQLAlchemy and SQLite cost. Repositories, units of work and events are unchanged
(``before_cursor_execute`` fires for every statement).

NOTE(sqlite-inline): a call that blocks blocks the event loop, so nothing here may wait long.
- Write transactions start with ``BEGIN IMMEDIATE`` under the short busy timeout; while another
  process holds the write lock longer, the attempt is retried after an ``asyncio.sleep`` backoff
  (the loop keeps serving), up to ``BUSY_DEADLINE_SECONDS``, then ``database is locked``.
- Every other statement runs with a short busy timeout (``INLINE_BUSY_TIMEOUT_MS``). In WAL mode
  readers never wait for the writer; the busy handler only covers rare corner cases (another
  process opening, closing or recovering the database), so the loop blocks at most that long.
- Inside one process, ``storage.db.Database`` queues writers on an asyncio lock, so the retry
  loop only ever waits for *another* process (``certplane worker`` next to ``serve``).
Trade-off: a statement's own execution time (microseconds for certplane's indexed statements,
longer for an auto-checkpoint's WAL copy) is spent on the loop thread, not in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.util import await_only, greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

DRIVER = "certplane_inline"
INLINE_BUSY_TIMEOUT_MS = 50
BUSY_DEADLINE_SECONDS = 30.0
MAX_IDLE_CONNECTIONS = 8
_FIRST_BACKOFF = 0.001
_MAX_BACKOFF = 0.05
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}",
)


class InlineCursor(sqlite3.Cursor):
    """A ``sqlite3`` cursor that also speaks the async engine's result protocol."""

    async def _async_soft_close(self) -> None:
        """Nothing to do: rows are fetched synchronously, on this thread, when asked for."""


class InlineConnection(sqlite3.Connection):
    """A ``sqlite3`` connection whose cursors are ``InlineCursor``."""

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """``sqlite3`` calls made inline by the async engine (no driver thread)."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    def on_connect(self) -> Callable[[Any], None]:
        functions = super().on_connect()

        def connect(dbapi_connection: Any) -> None:
            # Transactions are begun explicitly (``do_begin``, ``InlineTransactions``).
            dbapi_connection.isolation_level = None
            for pragma in _PRAGMAS:
                dbapi_connection.execute(pragma)
            functions(dbapi_connection)

        return connect

    def do_begin(self, dbapi_connection: Any) -> None:
        """``BEGIN IMMEDIATE`` for engine-level use (migrations, tools): no read lock upgrades.

        A unit of work has already begun its transaction (``InlineTransactions``): nothing to do.
        """
        if not dbapi_connection.driver_connection.in_transaction:
            begin_immediate(dbapi_connection.driver_connection)

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        _async_point()
        cursor.execute(statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        _async_point()
        cursor.execute(statement)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        _async_point()
        cursor.executemany(statement, parameters)

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        # Connections are only used on the loop thread, but may be closed by the collector.
        kwargs["check_same_thread"] = False
        kwargs["timeout"] = INLINE_BUSY_TIMEOUT_MS / 1000
        kwargs["factory"] = InlineConnection
        return args, kwargs


class InlineTransactions:
    """Units of work on inline connections, kept between transactions (no pool round trip)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._idle: list[Connection] = []

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Connection]:
        """A connection in a transaction: committed on success, rolled back otherwise."""
        conn = self._idle.pop() if self._idle else await greenlet_spawn(self._engine.connect)
        committed = False
        try:
            await _begin(_driver(conn), write=write)
            conn.begin()
            yield conn
            conn.commit()
            committed = True
        finally:
            self._end(conn, committed)

    def _end(self, conn: Connection, committed: bool) -> None:
        """Roll back whatever is left open, then keep the connection or close it."""
        try:
            if not committed:
                conn.rollback()
            driver = _driver(conn)
            if driver.in_transaction:
                driver.rollback()
        except Exception:
            conn.invalidate()
        if conn.invalidated or len(self._idle) >= MAX_IDLE_CONNECTIONS:
            conn.close()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        """Return every kept connection to the pool (before the engine is disposed)."""
        while self._idle:
            self._idle.pop().close()


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


async def _begin(driver: sqlite3.Connection, *, write: bool) -> None:
    """``BEGIN`` for readers; ``BEGIN IMMEDIATE`` for writers, retried while another process
    holds the write lock, sleeping between attempts so the loop keeps serving."""
    if not write:
        driver.execute("BEGIN")
        return
    deadline = time.monotonic() + BUSY_DEADLINE_SECONDS
    delay = _FIRST_BACKOFF
    while not _try_begin_immediate(driver):
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("database is locked")
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_BACKOFF)


def begin_immediate(driver: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` from synchronous engine code, waiting through the greenlet.

    Precondition: inside SQLAlchemy's greenlet when the lock may be busy (async engine use).
    """
    deadline = time.monotonic() + BUSY_DEADLINE_SECONDS
    delay = _FIRST_BACKOFF
    while not _try_begin_immediate(driver):
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("database is locked")
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, _MAX_BACKOFF)


def _try_begin_immediate(driver: sqlite3.Connection) -> bool:
    """One attempt: False when another process held the write lock past the short busy timeout.

    Inside one process writers queue on an asyncio lock, so SQLite's busy handler (at most
    ``INLINE_BUSY_TIMEOUT_MS``) only ever runs while *another* process writes.
    """
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
        return False
    return True


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return "locked" in str(exc) or "busy" in str(exc)


async def _ready() -> None:
    """An awaitable that completes at once: it never yields to the event loop."""


def _async_point() -> None:
    """Pass through the greenlet's parent once per statement, as async drivers do.

    ``AsyncConnection.execute`` (migrations, tools) insists that a statement awaited something;
    this awaits a coroutine that is already done: two greenlet switches, no loop iteration.
    A unit of work runs its statements outside any greenlet: nothing to do then.
    """
    if in_greenlet():
        await_only(_ready())


def inline_url(url: URL) -> URL:
    """The same SQLite database, reached through this module's dialect."""
    return url.set(drivername=f"sqlite+{DRIVER}")


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")
