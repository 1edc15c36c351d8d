"""Approval requests of one tenant (maker-checker): held orders and sensitive policy changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w
from certplane.server.storage.scope import new_id


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalKind(StrEnum):
    ORDER = "order"
    POLICY = "policy"


@dataclass(frozen=True)
class Approval:
    id: str
    kind: ApprovalKind
    object_id: str
    status: ApprovalStatus
    rule: str
    policy_version: int | None
    requested_by: str
    summary: dict[str, Any]
    decided_by: str | None
    reason: str | None
    created_at: datetime
    deadline: datetime
    decided_at: datetime | None


def _approval(row: Mapping[str, Any]) -> Approval:
    return Approval(
        id=row["id"],
        kind=ApprovalKind(row["kind"]),
        object_id=row["object_id"],
        status=ApprovalStatus(row["status"]),
        rule=row["rule"],
        policy_version=row["policy_version"],
        requested_by=row["requested_by"],
        summary=row["summary"],
        decided_by=row["decided_by"],
        reason=row["reason"],
        created_at=row["created_at"],
        deadline=row["deadline"],
        decided_at=row["decided_at"],
    )


_a = t.approvals
_GET = scoped_select(_a).where(_a.c.id == w("id"))
_FOR_OBJECT = scoped_select(_a).where(_a.c.kind == w("kind"), _a.c.object_id == w("object_id"))
_DECIDE = scoped_update(_a).where(_a.c.id == w("id"), _a.c.status == ApprovalStatus.PENDING.value)


class ApprovalRepo(ScopedRepo):
    table = t.approvals

    async def create(
        self,
        *,
        kind: ApprovalKind,
        object_id: str,
        rule: str,
        policy_version: int | None,
        requested_by: str,
        summary: dict[str, Any],
        now: datetime,
        deadline: datetime,
    ) -> Approval:
        approval_id = new_id()
        await self._insert(
            id=approval_id,
            kind=kind.value,
            object_id=object_id,
            status=ApprovalStatus.PENDING.value,
            rule=rule,
            policy_version=policy_version,
            requested_by=requested_by,
            summary=summary,
            created_at=now,
            deadline=deadline,
        )
        created = await self.get(approval_id)
        assert created is not None
        return created

    async def get(self, approval_id: str) -> Approval | None:
        row = await self._one(_GET, w_id=approval_id)
        return None if row is None else _approval(row)

    async def for_object(self, kind: ApprovalKind, object_id: str) -> list[Approval]:
        rows = await self._all(_FOR_OBJECT, w_kind=kind.value, w_object_id=object_id)
        return [_approval(r) for r in rows]

    async def page(
        self, *, status: ApprovalStatus | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Approval]:
        stmt = scoped_select(_a).order_by(_a.c.created_at, _a.c.id).limit(limit)
        if status is not None:
            stmt = stmt.where(_a.c.status == status.value)
        if after is not None:
            stmt = stmt.where(
                (_a.c.created_at > after[0])
                | ((_a.c.created_at == after[0]) & (_a.c.id > after[1]))
            )
        return [_approval(r) for r in await self._all(stmt)]

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        decided_by: str,
        reason: str | None,
        now: datetime,
    ) -> bool:
        """Move a pending approval to its decision; False when it was no longer pending."""
        values = {
            "status": status.value,
            "decided_by": decided_by,
            "reason": reason,
            "decided_at": now,
        }
        return await self._write(_DECIDE, w_id=approval_id, **values) == 1
