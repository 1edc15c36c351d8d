"""Rate limits in the ACME flow (ARCHITECTURE §7): spend in the request's transaction, refuse
with ``rateLimited`` (RFC 8555 §6.7) naming the limit and when it frees up."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from certplane.policy.ratelimits.gcra import Limit
from certplane.policy.ratelimits.limiter import give_back, spend
from certplane.server.config import LimitsConfig, parse_rate
from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import Tenant
from certplane.server.storage.uow import TenantTx

# Each enforced limit: its name (in problem details, bucket keys and tenant overrides) by field.
LIMIT_NAMES = {
    "new_orders_per_account": "new-orders-per-account",
    "new_accounts_per_tenant": "new-accounts-per-tenant",
    "certificates_per_tenant": "certificates-per-tenant",
    "new_accounts_per_ip": "new-accounts-per-ip",
}


@dataclass(frozen=True)
class RateLimits:
    """The limits the ACME flow enforces; None turns one off."""

    new_orders_per_account: Limit | None = None
    new_accounts_per_tenant: Limit | None = None
    certificates_per_tenant: Limit | None = None
    new_accounts_per_ip: Limit | None = None

    def for_tenant(self, tenant: Tenant | None) -> RateLimits:
        """These limits with the tenant's overrides applied (its plan, its deal)."""
        overrides = tenant.limit_overrides if tenant is not None else {}
        if not overrides:
            return self
        changes = {
            field_name: _limit(name, overrides[name])
            for field_name, name in LIMIT_NAMES.items()
            if name in overrides
        }
        return dataclasses.replace(self, **changes)


QUOTA_SUBJECT = "tenant"


async def charge(tx: TenantTx, limit: Limit | None, subject: str, now: datetime) -> None:
    """Spend one unit of ``limit`` for ``subject`` in ``tx``, or raise ``rateLimited`` (429)
    with ``Retry-After``. The spend commits or rolls back with the request's transaction."""
    if limit is None:
        return
    decision = await spend(tx.rate_buckets, limit, f"{limit.name}:{subject}", now)
    if decision.allowed:
        return
    retry = max(1, math.ceil(decision.retry_in.total_seconds()))
    free_at = (now + decision.retry_in).replace(microsecond=0).isoformat()
    raise AcmeProblem(
        ProblemType.RATE_LIMITED,
        f"limit {limit.name} ({limit.count} per {_period(limit)}) reached; "
        f"the next one is allowed at {free_at}",
        retry_after=retry,
    )


async def refund(tx: TenantTx, limit: Limit | None, subject: str, now: datetime) -> None:
    """Give one unit of ``limit`` back to ``subject`` (its operation failed after the spend
    committed), in ``tx``."""
    if limit is None:
        return
    await give_back(tx.rate_buckets, limit, f"{limit.name}:{subject}", now)


def ip_subject(address: str) -> str:
    """The bucket subject of a client address: the IPv4 address, or the IPv6 /64 it is in
    (one subscriber commonly holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        return f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"ip:{ip}"


def _period(limit: Limit) -> str:
    seconds = int(limit.period.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rate_limits(config: LimitsConfig) -> RateLimits:
    """The limits of ``[limits]`` (already validated by the configuration loader)."""
    return RateLimits(
        **{
            field_name: _limit(name, getattr(config, field_name))
            for field_name, name in LIMIT_NAMES.items()
        }
    )


def _limit(name: str, text: str) -> Limit | None:
    parsed = parse_rate(text, name)
    if parsed is None:
        return None
    count, seconds = parsed
    return Limit(name, count=count, period=timedelta(seconds=seconds), burst=count)
