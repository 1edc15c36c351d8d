"""What the management API's handlers are built with (one instance per process)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from certplane.ca.keys.envelope import MasterKey
from certplane.policy.ratelimits.gcra import Limit
from certplane.server.clock import Clock
from certplane.server.config import Config
from certplane.server.ra.accounts import AccountService
from certplane.server.ra.approvals import ApprovalService
from certplane.server.ra.limits import RateLimits
from certplane.server.ra.policies import PolicyService
from certplane.server.ra.provisioning import Provisioner
from certplane.server.storage.uow import UnitOfWork


@dataclass(frozen=True)
class AdminServices:
    config: Config
    uow: UnitOfWork
    clock: Clock
    master_key: MasterKey
    provisioner: Provisioner
    policies: PolicyService
    approvals: ApprovalService
    accounts: AccountService
    limits: RateLimits
    call_limit: Limit | None
    token_lifetime: timedelta
    idempotency_window: timedelta
    # Tests: check every answer against the endpoint's declared schema (a mismatch is a 500).
    check_responses: bool = False
