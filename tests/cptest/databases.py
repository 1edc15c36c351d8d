"""Throwaway databases: a SQLite file, or a PostgreSQL database created and dropped per use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg

PG_HOST = os.environ.get("CERTPLANE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CERTPLANE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CERTPLANE_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("CERTPLANE_TEST_PG_DB", "test")

PG_HELP = (
    f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (user {PG_USER}, database "
    f"{PG_ADMIN_DB}). Start it, e.g. `pg_ctlcluster --skip-systemctl-redirect "
    "$(ls /etc/postgresql) main start`, or point CERTPLANE_TEST_PG_HOST/PORT/USER/DB at one."
)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_available() -> bool:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError):
        return False
    return True


@contextlib.contextmanager
def database_url(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'certplane.db'}"
        return
    name = f"certplane_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
