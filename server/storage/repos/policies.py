"""Versioned policy documents of one tenant, and which version is in force."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, update

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import (
    TENANT_PARAM,
    ScopedRepo,
    scoped_select,
    scoped_update,
    w,
)


class PolicyStatus(StrEnum):
    DRAFT = "draft"
    PENDING = "pending"  # a sensitive change waiting for a second tenant-admin
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    status: PolicyStatus
    source: str
    document: dict[str, Any]
    comment: str
    created_by: str
    created_at: datetime
    activated_at: datetime | None


def _version(row: Mapping[str, Any]) -> PolicyVersion:
    return PolicyVersion(
        version=row["version"],
        status=PolicyStatus(row["status"]),
        source=row["source"],
        document=row["document"],
        comment=row["comment"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
    )


_p = t.policies
_GET = scoped_select(_p).where(_p.c.version == w("version"))
_ACTIVE = scoped_select(_p).where(_p.c.status == PolicyStatus.ACTIVE.value)
_LAST = scoped_select(_p, func.max(_p.c.version).label("last"))
_PAGE = scoped_select(_p).where(_p.c.version < w("before")).order_by(_p.c.version.desc())
_MOVE = scoped_update(_p).where(_p.c.version == w("version"), _p.c.status.in_(w("from", True)))
# NOTE(tenancy): the tenant row of the scope, addressed by the scope's own id parameter.
_POINT = update(t.tenants).where(t.tenants.c.id == bindparam(TENANT_PARAM))


class PolicyRepo(ScopedRepo):
    table = t.policies

    async def get(self, version: int) -> PolicyVersion | None:
        row = await self._one(_GET, w_version=version)
        return None if row is None else _version(row)

    async def active(self) -> PolicyVersion | None:
        """The version in force, if the tenant has one."""
        row = await self._one(_ACTIVE)
        return None if row is None else _version(row)

    async def add(
        self, source: str, document: dict[str, Any], comment: str, created_by: str, now: datetime
    ) -> PolicyVersion:
        """A new draft with the next version number (the tenant row serialises writers)."""
        last = (await self._one(_LAST))["last"] or 0
        await self._insert(
            version=last + 1,
            status=PolicyStatus.DRAFT.value,
            source=source,
            document=document,
            comment=comment,
            created_by=created_by,
            created_at=now,
        )
        created = await self.get(last + 1)
        assert created is not None
        return created

    async def page(self, *, before: int | None, limit: int) -> list[PolicyVersion]:
        """Newest first, versions below ``before``."""
        stmt = _PAGE.limit(limit)
        rows = await self._all(stmt, w_before=before if before is not None else 2**31 - 1)
        return [_version(r) for r in rows]

    async def move(
        self,
        version: int,
        from_: tuple[PolicyStatus, ...],
        to: PolicyStatus,
        *,
        activated_at: datetime | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": to.value}
        if activated_at is not None:
            values["activated_at"] = activated_at
        changed = await self._write(
            _MOVE, w_version=version, w_from=[s.value for s in from_], **values
        )
        return changed == 1

    async def point_tenant_at(self, version: int) -> None:
        """Make ``version`` the one in force (tenants.policy_version)."""
        await self._conn.execute(_POINT, self._params({"policy_version": version}))
