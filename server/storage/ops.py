"""The ONLY unscoped database access: job claims and sweeps that span tenants.

NOTE(tenancy): ``wfe`` and ``ra`` may not import this module (import-linter contract). Whatever
is claimed here is handed to tenant-scoped code with its ``TenantScope``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from certplane.server.storage import tables as t
from certplane.server.storage.api_store import ApiStore
from certplane.server.storage.db import Database
from certplane.server.storage.scope import TenantScope


@dataclass(frozen=True)
class ClaimedJob:
    scope: TenantScope
    job_id: str
    kind: str
    object_id: str
    attempts: int
    deadline: datetime


async def claim_due_jobs(
    db: Database, now: datetime, *, lease: timedelta, limit: int = 10
) -> list[ClaimedJob]:
    """Claim queued jobs that are due and not leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    j = t.jobs
    stmt = (
        select(
            j.c.tenant_id,
            j.c.id,
            j.c.kind,
            j.c.object_id,
            j.c.attempts,
            j.c.deadline,
            t.tenants.c.slug,
        )
        .join(t.tenants, t.tenants.c.id == j.c.tenant_id)
        .where(j.c.status == "queued", j.c.run_at <= now)
        .where((j.c.locked_until.is_(None)) | (j.c.locked_until < now))
        .order_by(j.c.run_at)
        .limit(limit)
    )
    if not db.is_sqlite:
        stmt = stmt.with_for_update(skip_locked=True, of=j)
    async with db.transaction(write=True) as conn:
        rows = (await conn.execute(stmt)).mappings().all()
        claimed = []
        for row in rows:
            await conn.execute(
                update(j)
                .where(j.c.tenant_id == row["tenant_id"], j.c.id == row["id"])
                .values(locked_until=now + lease, attempts=row["attempts"] + 1)
            )
            claimed.append(
                ClaimedJob(
                    scope=TenantScope(row["tenant_id"], row["slug"]),
                    job_id=row["id"],
                    kind=row["kind"],
                    object_id=row["object_id"],
                    attempts=row["attempts"] + 1,
                    deadline=row["deadline"],
                )
            )
        return claimed


async def prune_idempotency_keys(db: Database, before: datetime) -> int:
    """Forget Idempotency-Key answers older than their replay window (every token's)."""
    async with db.transaction(write=True) as conn:
        return await ApiStore(conn).prune_keys(before)


async def prune_used_nonces(db: Database, now: datetime) -> int:
    """Forget redeemed nonces past their lifetime: they would be refused as expired anyway."""
    async with db.transaction(write=True) as conn:
        result = await conn.execute(delete(t.used_nonces).where(t.used_nonces.c.expires_at < now))
        return int(result.rowcount)
