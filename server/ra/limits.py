"""Rate limits in the ACME flow (ARCHITECTURE §7): spend in the request's transaction, refuse
with ``rateLimited`` (RFC 8555 §6.7) naming the limit and when it frees up.

Two kinds of limit: rates (GCRA buckets, ``Limit``: so many per period, refilled evenly) and
caps (``Cap``: so many at once, counted from the stored objects). Where a limit's value comes
from: the configuration's ``[limits]``, then the tenant's tier (``[limits.tiers.NAME]``), then
the tenant's own overrides, each over the one before.

Adding a limit: a field of ``LimitsConfig`` (a default, its docstring, ``COUNT_LIMITS`` for a
cap), its name in ``LIMIT_NAMES``, a field of ``RateLimits``, its use in the flow, off in
``tests/cptest/server.py: make_config``, and the README's configuration table.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from certplane.policy.identifiers import Identifier
from certplane.policy.ratelimits.gcra import Decision, Limit, maybe_spend
from certplane.policy.ratelimits.limiter import give_back, peek, spend
from certplane.server.config import COUNT_LIMITS, LimitsConfig, parse_limit
from certplane.server.errors import AcmeProblem, ProblemType, Subproblem
from certplane.server.model import Tenant
from certplane.server.storage.uow import TenantTx

# Each enforced limit: its name (in problem details, bucket keys and tenant overrides) by field.
LIMIT_NAMES = {
    "new_orders_per_account": "new-orders-per-account",
    "new_accounts_per_tenant": "new-accounts-per-tenant",
    "certificates_per_tenant": "certificates-per-tenant",
    "new_accounts_per_ip": "new-accounts-per-ip",
    "pending_authorizations_per_account": "pending-authorizations-per-account",
    "concurrent_issuance_per_tenant": "concurrent-issuance-per-tenant",
    "failed_validations_per_identifier_per_account": (
        "failed-validations-per-identifier-per-account"
    ),
}
_FIELDS = {name: field_name for field_name, name in LIMIT_NAMES.items()}

# A cap whose objects are busy only briefly (issuance) is retried after this many seconds.
CAP_RETRY_SECONDS = 3


@dataclass(frozen=True)
class Cap:
    """At most ``count`` things at once: nothing refills with time, one frees up when one of
    the counted things ends."""

    name: str
    count: int


@dataclass(frozen=True)
class RateLimits:
    """The limits the ACME flow enforces; None turns one off."""

    new_orders_per_account: Limit | None = None
    new_accounts_per_tenant: Limit | None = None
    certificates_per_tenant: Limit | None = None
    new_accounts_per_ip: Limit | None = None
    pending_authorizations_per_account: Cap | None = None
    concurrent_issuance_per_tenant: Cap | None = None
    failed_validations_per_identifier_per_account: Limit | None = None
    # [limits.tiers.NAME]: configuration key -> value, for the tenants on that tier.
    tiers: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)
    # Where a limit's value came from when not the configuration: "tier:NAME" or "override".
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def for_tenant(self, tenant: Tenant | None) -> RateLimits:
        """These limits with the tenant's tier, then its own overrides, applied.

        A tier the configuration no longer names is ignored: the tenant gets the defaults.
        """
        if tenant is None:
            return self
        limits = self
        tier = self.tiers.get(tenant.tier) if tenant.tier else None
        if tier:
            limits = limits._with(tier, f"tier:{tenant.tier}")
        overrides = tenant.limit_overrides
        if overrides:
            own = {_FIELDS[name]: text for name, text in overrides.items() if name in _FIELDS}
            limits = limits._with(own, "override")
        return limits

    def source(self, field_name: str) -> str:
        """Where the limit's value came from: "config", "tier:NAME" or "override"."""
        return self.sources.get(field_name, "config")

    def _with(self, texts: Mapping[str, str], source: str) -> RateLimits:
        changes = {name: _parse(name, text) for name, text in texts.items()}
        sources = {**self.sources, **dict.fromkeys(texts, source)}
        # mypy cannot match **changes to the fields: each is a Limit or a Cap by _parse.
        return dataclasses.replace(self, **changes, sources=sources)  # type: ignore[arg-type]


QUOTA_SUBJECT = "tenant"


async def charge(tx: TenantTx, limit: Limit | None, subject: str, now: datetime) -> None:
    """Spend one unit of ``limit`` for ``subject`` in ``tx``, or raise ``rateLimited`` (429)
    with ``Retry-After``. The spend commits or rolls back with the request's transaction."""
    if limit is None:
        return
    decision = await spend(tx.rate_buckets, limit, _key(limit, subject), now)
    if not decision.allowed:
        raise _refused(limit, decision, now)


async def consume(tx: TenantTx, limit: Limit | None, subject: str, now: datetime) -> None:
    """Spend one unit of ``limit`` for ``subject`` if one is left; never refuses (the thing it
    counts has already happened: an empty bucket stays empty)."""
    if limit is not None:
        await spend(tx.rate_buckets, limit, _key(limit, subject), now)


async def refund(tx: TenantTx, limit: Limit | None, subject: str, now: datetime) -> None:
    """Give one unit of ``limit`` back to ``subject`` (its operation failed after the spend
    committed), in ``tx``."""
    if limit is None:
        return
    await give_back(tx.rate_buckets, limit, _key(limit, subject), now)


async def check_new_order(
    tx: TenantTx,
    limits: RateLimits,
    account_id: str,
    identifiers: Sequence[Identifier],
    now: datetime,
) -> None:
    """The checks of newOrder that spend nothing (RFC 8555 §7.4): the account's pending
    authorizations, and its failed validations per identifier."""
    await _check_pending(tx, limits.pending_authorizations_per_account, account_id, now)
    await _check_failures(
        tx, limits.failed_validations_per_identifier_per_account, account_id, identifiers, now
    )


async def _check_pending(tx: TenantTx, cap: Cap | None, account_id: str, now: datetime) -> None:
    """Refuse when the account holds ``cap`` pending authorizations; one frees up when the
    oldest expires (sooner if the client validates or deactivates one, RFC 8555 §7.5.2).

    NOTE(soft-cap): nothing is locked; concurrent newOrders of one account may together go
    past the cap by the authorizations they create (at most 100 each).
    """
    if cap is None:
        return
    pending, oldest_expiry = await tx.authzs.pending_for_account(account_id, now)
    if pending < cap.count or oldest_expiry is None:
        return
    free_in = oldest_expiry - now
    raise AcmeProblem(
        ProblemType.RATE_LIMITED,
        f"limit {cap.name} ({cap.count}) reached: this account has {pending} pending "
        f"authorizations; the oldest expires at {_stamp(oldest_expiry)} (validate or "
        "deactivate some to go on sooner)",
        retry_after=_seconds(free_in),
    )


async def _check_failures(
    tx: TenantTx,
    limit: Limit | None,
    account_id: str,
    identifiers: Sequence[Identifier],
    now: datetime,
) -> None:
    """Refuse the identifiers whose failed-validation bucket is empty, one subproblem each
    (RFC 8555 §6.7.1); Retry-After is when the last of them frees up."""
    if limit is None:
        return
    keys = {_key(limit, identifier_subject(account_id, i)): i for i in identifiers}
    decisions = await peek(tx.rate_buckets, limit, list(keys), now)
    refused = [(keys[key], d) for key, d in decisions.items() if not d.allowed]
    if not refused:
        return
    subs = tuple(
        Subproblem(
            ProblemType.RATE_LIMITED,
            f"too many failed validations of {i.type.value}:{i.value}; "
            f"the next attempt is allowed at {_stamp(now + d.retry_in)}",
            i.to_json(),
        )
        for i, d in refused
    )
    identifier, last = max(refused, key=lambda item: item[1].retry_in)
    more = f" and {len(subs) - 1} more" if len(subs) > 1 else ""
    raise AcmeProblem(
        ProblemType.RATE_LIMITED,
        f"limit {limit.name} ({limit.count} per {_period(limit)}) reached for "
        f"{identifier.type.value}:{identifier.value}{more}; "
        f"an order for it is allowed again at {_stamp(now + last.retry_in)}",
        subproblems=subs,
        retry_after=_seconds(last.retry_in),
    )


async def hold_issuance_slot(tx: TenantTx, cap: Cap | None, now: datetime) -> None:
    """Refuse a finalize while ``cap`` orders of the tenant are ``processing`` (orders an
    approval rule holds do not count: nothing is being issued for them; once approved they
    start whatever the count, bounded by how fast people decide).

    NOTE(issuance-cap): the count and the transition to ``processing`` that follows it happen
    under one per-tenant lock (the cap's bucket row, locked until ``tx`` ends; on SQLite the
    write transaction), so concurrent finalizes never take the tenant past the cap: at most
    ``cap.count`` orders are ever ``processing`` because of a finalize. Orders that finish
    meanwhile only lower the count. A cap lowered while more orders are processing refuses
    until enough of them have finished.
    """
    if cap is None:
        return
    await tx.rate_buckets.lock(_key(cap, QUOTA_SUBJECT), now)
    busy = await tx.orders.count_processing()
    if busy < cap.count:
        return
    raise AcmeProblem(
        ProblemType.RATE_LIMITED,
        f"limit {cap.name} ({cap.count}) reached: {busy} certificates of this tenant are being "
        "issued; finalize again shortly (the order stays ready)",
        retry_after=CAP_RETRY_SECONDS,
    )


@dataclass(frozen=True)
class LimitUsage:
    """Where a tenant stands against one limit (for the management API)."""

    name: str
    rate: str  # "COUNT/PERIOD", or "COUNT" for a cap
    source: str  # "config", "tier:NAME" or "override"
    remaining: int
    resets_at: datetime | None  # when the bucket is full again; None: full now, or a cap


# The tenant-wide limits, in the order usage() reports them.
TENANT_LIMITS = (
    "certificates_per_tenant",
    "new_accounts_per_tenant",
    "concurrent_issuance_per_tenant",
)


async def usage(tx: TenantTx, limits: RateLimits, now: datetime) -> list[LimitUsage]:
    """The tenant's standing against each tenant-wide limit that is on, read without spending.

    ``limits`` are the tenant's (``RateLimits.for_tenant``). A rate's remaining units come from
    its stored bucket: floor((burst × interval − (TAT − now)) / interval), between 0 and the
    burst; a cap's from the current count.
    """
    on = {name: value for name in TENANT_LIMITS if (value := getattr(limits, name)) is not None}
    keys = [_key(value, QUOTA_SUBJECT) for value in on.values() if isinstance(value, Limit)]
    tats = await tx.rate_buckets.read(keys)
    result = []
    for name, value in on.items():
        if isinstance(value, Limit):
            tat = tats.get(_key(value, QUOTA_SUBJECT))
            result.append(_rate_usage(value, limits.source(name), tat, now))
        else:
            busy = await tx.orders.count_processing()
            result.append(_cap_usage(value, limits.source(name), busy))
    return result


def _rate_usage(limit: Limit, source: str, tat: datetime | None, now: datetime) -> LimitUsage:
    standing = maybe_spend(limit, tat, 0, now)
    resets_at = tat if tat is not None and tat > now else None
    return LimitUsage(limit.name, _terms(limit), source, standing.remaining, resets_at)


def _cap_usage(cap: Cap, source: str, busy: int) -> LimitUsage:
    return LimitUsage(cap.name, str(cap.count), source, max(cap.count - busy, 0), None)


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


def identifier_subject(account_id: str, identifier: Identifier) -> str:
    """The bucket subject of an identifier of an account: what its authorization covers (a
    wildcard counts with its base name), hashed so that a 253-character name fits a key."""
    covered = f"{identifier.type.value}:{identifier.base_domain}".encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(covered).digest()[:16]).rstrip(b"=")
    return f"account:{account_id}:{digest.decode('ascii')}"


def _key(limit: Limit | Cap, subject: str) -> str:
    return f"{limit.name}:{subject}"


def _refused(limit: Limit, decision: Decision, now: datetime) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.RATE_LIMITED,
        f"limit {limit.name} ({limit.count} per {_period(limit)}) reached; "
        f"the next one is allowed at {_stamp(now + decision.retry_in)}",
        retry_after=_seconds(decision.retry_in),
    )


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def _stamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _terms(limit: Limit) -> str:
    return f"{limit.count}/{_period(limit)}"


def _period(limit: Limit) -> str:
    seconds = int(limit.period.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rate_limits(config: LimitsConfig) -> RateLimits:
    """The limits of ``[limits]`` and its tiers (already validated by the configuration
    loader)."""
    return RateLimits(
        **{name: _parse(name, getattr(config, name)) for name in LIMIT_NAMES},  # type: ignore[arg-type]
        tiers=config.tiers,
    )


def check_override(name: str, text: str) -> None:
    """Check a tenant override ``text`` for the limit called ``name`` ("new-orders-per-account").

    Raises:
        KeyError: not a limit's name.
        ConfigError: not a value of that limit ("COUNT/PERIOD", or "COUNT" for a cap).
    """
    field_name = _FIELDS[name]
    parse_limit(field_name, text, name)


@functools.cache
def _parse(field_name: str, text: str) -> Limit | Cap | None:
    name = LIMIT_NAMES[field_name]
    parsed = parse_limit(field_name, text, name)
    if parsed is None:
        return None
    if field_name in COUNT_LIMITS:
        assert isinstance(parsed, int)
        return Cap(name, parsed)
    assert isinstance(parsed, tuple)
    count, seconds = parsed
    return Limit(name, count=count, period=timedelta(seconds=seconds), burst=count)
