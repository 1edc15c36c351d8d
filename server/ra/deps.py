"""What every use case of the registration authority is built with (ARCHITECTURE.md §2).

The RA receives each collaborator here, in its constructor; nothing is pulled from a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from certplane.ca.keys.envelope import MasterKey
from certplane.server.clock import Clock
from certplane.server.config import AcmeConfig, CaConfig, TestingConfig
from certplane.server.ra.limits import RateLimits
from certplane.server.ra.policies import PolicyService
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import UnitOfWork

AccountUri = Callable[[TenantScope, str], str]


@dataclass(frozen=True)
class AcmeSettings:
    """Lifetimes and limits of the protocol objects, from ``[acme]`` and ``[ca]``."""

    order_lifetime: timedelta
    pending_authz_lifetime: timedelta
    valid_authz_lifetime: timedelta
    finalize_deadline: timedelta
    issuance_deadline: timedelta
    leaf_validity: timedelta
    terms_of_service: str
    caa_identities: tuple[str, ...]
    validation_delay: float = 0.0
    finalize_processing: float = 0.0
    issuance_retry_first: timedelta = timedelta(seconds=5)
    issuance_retry_max: timedelta = timedelta(minutes=2)

    def issuance_retry_delay(self, attempts: int) -> timedelta:
        """Backoff before retry ``attempts`` + 1 of an issuance job: x4 per attempt, capped."""
        delay: timedelta = self.issuance_retry_first * float(4 ** max(0, attempts - 1))
        return min(delay, self.issuance_retry_max)

    @classmethod
    def from_config(cls, acme: AcmeConfig, ca: CaConfig, testing: TestingConfig) -> AcmeSettings:
        return cls(
            order_lifetime=timedelta(seconds=acme.order_lifetime_seconds),
            pending_authz_lifetime=timedelta(seconds=acme.pending_authz_lifetime_seconds),
            valid_authz_lifetime=timedelta(seconds=acme.valid_authz_lifetime_seconds),
            finalize_deadline=timedelta(seconds=acme.finalize_deadline_seconds),
            issuance_deadline=timedelta(seconds=ca.issuance_deadline_seconds),
            leaf_validity=timedelta(days=ca.leaf_validity_days),
            terms_of_service=acme.terms_of_service,
            caa_identities=acme.caa_identities,
            validation_delay=testing.validation_delay_seconds,
            finalize_processing=testing.finalize_processing_seconds,
            issuance_retry_first=timedelta(seconds=ca.issuance_retry_first_seconds),
            issuance_retry_max=timedelta(seconds=ca.issuance_retry_max_seconds),
        )


@dataclass
class BackgroundTasks:
    """In-process tasks (validations, issuances) that outlive the request that started them.

    Each is also a durable job: if the process dies, a worker finishes it.
    """

    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for every running task (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass(frozen=True)
class RADeps:
    uow: UnitOfWork
    clock: Clock
    settings: AcmeSettings
    master_key: MasterKey
    account_uri: AccountUri
    tasks: BackgroundTasks
    policies: PolicyService
    limits: RateLimits = field(default_factory=RateLimits)
