"""Migrations create exactly the schema ``tables.py`` declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cptest.databases import database_url

from certplane.server.storage.db import Database
from certplane.server.storage.migrate import current_revision, head_revision, upgrade
from certplane.server.storage.tables import metadata


async def _diff(url: str) -> tuple[list[object], str | None]:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
        return diff, await current_revision(db.engine)
    finally:
        await db.dispose()


def test_migrations_match_the_declared_schema(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        diff, revision = asyncio.run(_diff(url))
    assert diff == []
    assert revision == head_revision()


def test_upgrade_is_idempotent(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        asyncio.run(_diff(url))
        diff, _ = asyncio.run(_diff(url))
    assert diff == []
