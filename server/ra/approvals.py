"""Approvals (maker-checker): orders an approval rule holds after finalize, and sensitive policy
changes that need a second tenant-admin.

A held order stays ``processing`` (RFC 8555 §7.4: the client polls with Retry-After) while an
approver decides. Approve: the issuance job starts. Reject: the order becomes ``invalid`` with an
``unauthorized`` error carrying the reason. No decision before the deadline: ``invalid`` too.
Nobody decides their own request. Each step is an event and a webhook notification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from certplane.policy.rbac import DECIDES, Role
from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import EventType, OrderStatus, Tenant
from certplane.server.ra.approval_records import APPROVAL_DEADLINE_JOB, record_step
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuance import ISSUE_JOB, IssuanceService
from certplane.server.ra.limits import QUOTA_SUBJECT, refund
from certplane.server.ra.policies import PolicyService
from certplane.server.storage.repos.approvals import Approval, ApprovalKind, ApprovalStatus
from certplane.server.storage.repos.policies import PolicyStatus
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

log = logging.getLogger(__name__)

POLICY_APPROVAL_DEADLINE = timedelta(days=7)


class ApprovalError(Exception):
    """A decision that cannot be made; ``kind`` says why (not-found, conflict, forbidden)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Decider:
    """Who decides: their actor name (as events record it) and their roles."""

    actor: str
    roles: frozenset[Role]
    # Principals up the decider's token lineage (who minted their token, and so on).
    minted_by: frozenset[str] = frozenset()


class ApprovalService:
    def __init__(self, deps: RADeps, issuance: IssuanceService, policies: PolicyService) -> None:
        self._deps = deps
        self._issuance = issuance
        self._policies = policies

    async def request_policy_change(
        self,
        tx: TenantTx,
        tenant: Tenant,
        version: int,
        sensitive: tuple[str, ...],
        created_by: str,
        requested_by: str,
    ) -> Approval:
        """A sensitive policy change waits for a second tenant-admin."""
        now = self._deps.clock.now()
        approval = await tx.approvals.create(
            kind=ApprovalKind.POLICY,
            object_id=str(version),
            rule="maker-checker: " + ", ".join(sensitive),
            policy_version=version,
            requested_by=requested_by,
            summary={"version": version, "sensitive": list(sensitive), "created_by": created_by},
            now=now,
            deadline=now + POLICY_APPROVAL_DEADLINE,
        )
        await tx.jobs.enqueue(
            APPROVAL_DEADLINE_JOB,
            approval.id,
            now=now,
            locked_until=None,
            deadline=approval.deadline + timedelta(days=1),
            run_at=approval.deadline,
        )
        await record_step(tx, tenant, approval, EventType.APPROVAL_REQUESTED, requested_by, now)
        return approval

    async def decide(
        self,
        tenant: Tenant,
        approval_id: str,
        decider: Decider,
        *,
        approve: bool,
        reason: str | None,
    ) -> Approval:
        """Approve or reject a pending request (maker-checker enforced here)."""
        scope = TenantScope(tenant.id, tenant.slug)
        async with self._deps.uow.begin(scope) as tx:
            approval = await tx.approvals.get(approval_id)
            if approval is None:
                raise ApprovalError("not-found", "approval not found")
            self._check_decider(approval, decider)
            now = self._deps.clock.now()
            status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
            if not await tx.approvals.decide(
                approval_id, status, decided_by=decider.actor, reason=reason, now=now
            ):
                raise ApprovalError("conflict", f"approval is already {approval.status.value}")
            decided = await tx.approvals.get(approval_id)
            assert decided is not None
            event = EventType.APPROVED if approve else EventType.APPROVAL_REJECTED
            await record_step(tx, tenant, decided, event, decider.actor, now, reason=reason)
            await self._apply(tx, tenant, decided, approve, decider.actor, reason or "", now)
        return decided

    @staticmethod
    def _check_decider(approval: Approval, decider: Decider) -> None:
        needed = DECIDES[approval.kind.value]
        if needed not in decider.roles:
            raise ApprovalError(
                "forbidden", f"{approval.kind.value} approvals are decided by the {needed} role"
            )
        makers = {approval.requested_by, approval.summary.get("created_by")}
        if makers & ({decider.actor} | decider.minted_by):
            raise ApprovalError(
                "separation-of-duties",
                "nobody decides their own request: another "
                f"{needed} must decide this {approval.kind.value} approval",
            )

    async def _apply(
        self,
        tx: TenantTx,
        tenant: Tenant,
        approval: Approval,
        approve: bool,
        actor: str,
        reason: str,
        now: datetime,
    ) -> None:
        if approval.kind is ApprovalKind.POLICY:
            version = int(approval.object_id)
            if approve:
                await self._policies.activate(tx, version, (PolicyStatus.PENDING,), actor, now)
            else:
                await self._policies.reject_pending(tx, version, actor, now, reason)
            return
        if approve:
            await self._release_order(tx, approval.object_id, now)
        else:
            detail = f"the order was rejected by an approver: {reason or 'no reason given'}"
            await self._refuse_order(tx, tenant, approval.object_id, detail, actor, now)

    async def _release_order(self, tx: TenantTx, order_id: str, now: datetime) -> None:
        """Start the held order's issuance once the approval has committed."""
        settings = self._deps.settings
        job_id = await tx.jobs.enqueue(
            ISSUE_JOB,
            order_id,
            now=now,
            locked_until=now + settings.finalize_deadline + timedelta(seconds=30),
            deadline=now + settings.issuance_deadline,
        )
        scope = tx.scope
        tx.after_commit(
            lambda: self._deps.tasks.spawn(self._issuance.run_issuance(scope, job_id, order_id))
        )

    async def _refuse_order(
        self, tx: TenantTx, tenant: Tenant, order_id: str, detail: str, actor: str, now: datetime
    ) -> None:
        """The held order becomes invalid with ``unauthorized``; its quota unit comes back."""
        error = AcmeProblem(ProblemType.UNAUTHORIZED, detail).to_json()
        moved = await tx.orders.transition(
            order_id, (OrderStatus.PROCESSING,), OrderStatus.INVALID, error=error
        )
        if not moved:
            return
        quota = self._deps.limits.for_tenant(tenant).certificates_per_tenant
        await refund(tx, quota, QUOTA_SUBJECT, now)
        await tx.events.append(
            EventType.FAILED, object_type="order", object_id=order_id, actor=actor, now=now,
            detail=detail,
        )  # fmt: skip

    async def expire(self, scope: TenantScope, job_id: str, approval_id: str) -> None:
        """The deadline job: an approval still pending at its deadline expires."""
        tenant = await self._deps.uow.tenants.by_slug(scope.slug)
        async with self._deps.uow.begin(scope) as tx:
            approval = await tx.approvals.get(approval_id)
            now = self._deps.clock.now()
            pending = approval is not None and approval.status is ApprovalStatus.PENDING
            if tenant is None or approval is None or not pending:
                await tx.jobs.finish(job_id, "done")
                return
            if now < approval.deadline:
                await tx.jobs.reschedule(job_id, approval.deadline, "not yet due")
                return
            await tx.jobs.finish(job_id, "done")
            await tx.approvals.decide(
                approval_id, ApprovalStatus.EXPIRED, decided_by="system", reason=None, now=now
            )
            expired = await tx.approvals.get(approval_id)
            assert expired is not None
            await record_step(tx, tenant, expired, EventType.APPROVAL_EXPIRED, "system", now)
            if approval.kind is ApprovalKind.ORDER:
                detail = "no approver decided before the approval deadline"
                await self._refuse_order(tx, tenant, approval.object_id, detail, "system", now)
            else:
                reason = "no second tenant-admin decided before the deadline"
                await self._policies.reject_pending(
                    tx, int(approval.object_id), "system", now, reason
                )
