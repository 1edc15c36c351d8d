"""Approval records written inside other use cases' transactions: an order held at finalize,
and the event + webhook notification of every approval step (see ``approvals.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from certplane.server.model import Account, EventType, Order, Tenant
from certplane.server.ra.policies import ActivePolicy
from certplane.server.ra.webhooks import announce
from certplane.server.storage.repos.approvals import Approval, ApprovalKind
from certplane.server.storage.uow import TenantTx

APPROVAL_DEADLINE_JOB = "approval-deadline"


def approval_json(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "kind": approval.kind.value,
        "object_id": approval.object_id,
        "status": approval.status.value,
        "rule": approval.rule,
        "policy_version": approval.policy_version,
        "requested_by": approval.requested_by,
        "summary": approval.summary,
        "decided_by": approval.decided_by,
        "reason": approval.reason,
        "created_at": approval.created_at.isoformat(),
        "deadline": approval.deadline.isoformat(),
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
    }


async def hold_order(
    tx: TenantTx,
    tenant: Tenant,
    account: Account,
    order: Order,
    *,
    rule: str,
    active: ActivePolicy,
    requested_by: str,
    now: datetime,
) -> Approval:
    """Record that ``order`` (already ``processing``) waits for an approver, in ``tx``."""
    deadline = now + active.policy.approval_deadline
    approval = await tx.approvals.create(
        kind=ApprovalKind.ORDER,
        object_id=order.id,
        rule=rule,
        policy_version=active.version,
        requested_by=requested_by,
        summary={
            "identifiers": [i.to_json() for i in order.identifiers],
            "account": account.id,
            "eab_kid": account.eab_kid,
            "profile": order.profile,
        },
        now=now,
        deadline=deadline,
    )
    await tx.jobs.enqueue(
        APPROVAL_DEADLINE_JOB,
        approval.id,
        now=now,
        locked_until=None,
        deadline=deadline + timedelta(days=1),
        run_at=deadline,
    )
    await record_step(tx, tenant, approval, EventType.APPROVAL_REQUESTED, requested_by, now)
    return approval


async def record_step(
    tx: TenantTx,
    tenant: Tenant,
    approval: Approval,
    event: EventType,
    actor: str,
    now: datetime,
    **data: Any,
) -> None:
    """The event on the approval and its webhook notification, in ``tx``."""
    await tx.events.append(
        event,
        object_type="approval",
        object_id=approval.id,
        actor=actor,
        now=now,
        kind=approval.kind.value,
        object=approval.object_id,
        rule=approval.rule,
        policy_version=approval.policy_version,
        **data,
    )
    await announce(
        tx,
        event.value,
        {"approval": approval_json(approval), **data},
        now,
        webhook_url=tenant.webhook_url,
    )
