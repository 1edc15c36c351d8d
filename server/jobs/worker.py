"""The job worker: finishes validations and issuances that no request is running.

Requests run their jobs inline under a lease; when a process dies mid-job the lease runs out
and any worker (in ``certplane serve`` or a separate process) claims the job again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from certplane.server.clock import Clock
from certplane.server.jobs.webhooks import WebhookSender
from certplane.server.ra.approval_records import APPROVAL_DEADLINE_JOB
from certplane.server.ra.approvals import ApprovalService
from certplane.server.ra.authorizations import VALIDATE_JOB, AuthorizationService
from certplane.server.ra.issuance import ISSUE_JOB, IssuanceService
from certplane.server.ra.webhooks import WEBHOOK_JOB
from certplane.server.storage.db import Database
from certplane.server.storage.ops import (
    ClaimedJob,
    claim_due_jobs,
    prune_idempotency_keys,
    prune_used_nonces,
)

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
NONCE_PRUNE_INTERVAL = timedelta(minutes=1)


class Worker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        authzs: AuthorizationService,
        issuance: IssuanceService,
        approvals: ApprovalService,
        webhooks: WebhookSender,
        *,
        poll_interval: float = 1.0,
        idempotency_window: timedelta = timedelta(hours=24),
    ) -> None:
        self._idempotency_window = idempotency_window
        self._approvals = approvals
        self._webhooks = webhooks
        self._db = db
        self._clock = clock
        self._authzs = authzs
        self._issuance = issuance
        self._poll_interval = poll_interval
        self._pruned_at: datetime | None = None

    async def run_once(self) -> int:
        """Claim and run every due job once; returns how many ran."""
        jobs = await claim_due_jobs(self._db, self._clock.now(), lease=LEASE)
        for job in jobs:
            await self._run(job)
        return len(jobs)

    async def _run(self, job: ClaimedJob) -> None:
        if job.kind == VALIDATE_JOB:
            await self._authzs.run_validation(job.scope, job.job_id, job.object_id)
        elif job.kind == ISSUE_JOB:
            await self._issuance.run_issuance(job.scope, job.job_id, job.object_id)
        elif job.kind == APPROVAL_DEADLINE_JOB:
            await self._approvals.expire(job.scope, job.job_id, job.object_id)
        elif job.kind == WEBHOOK_JOB:
            await self._webhooks.deliver(job.scope, job.job_id, job.object_id)
        else:
            log.error("job %s has unknown kind %r", job.job_id, job.kind)

    async def _prune_nonces(self) -> None:
        """Forget expired redeemed nonces and Idempotency-Key answers past their window, at
        most once per ``NONCE_PRUNE_INTERVAL``."""
        now = self._clock.now()
        if self._pruned_at is None or now - self._pruned_at >= NONCE_PRUNE_INTERVAL:
            await prune_used_nonces(self._db, now)
            await prune_idempotency_keys(self._db, now - self._idempotency_window)
            self._pruned_at = now

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                ran = await self.run_once()
                await self._prune_nonces()
            except Exception:
                log.exception("worker pass failed")
                ran = 0
            if ran == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_interval)
