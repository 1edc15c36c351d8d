"""The Generic Cell Rate Algorithm, as pure functions over a bucket's theoretical arrival time.

A limit allows ``count`` events per ``period`` with bursts of up to ``burst`` events. Its
*emission interval* is ``period / count``; a bucket is a single timestamp, the theoretical arrival
time (TAT) of the next event if events arrived exactly at the limit. Spending ``cost`` moves the
TAT ``cost`` intervals later; the spend is allowed while the TAT stays within ``burst`` intervals
of now. This is the shape of Boulder's ``ratelimits`` package (ATM Forum TM 4.1 §4.4.2,
"virtual scheduling" form): one number per bucket, no background refill, exact under any
schedule, and a refund is just moving the TAT back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Decision", "Limit", "maybe_spend", "refund"]

_ZERO = timedelta(0)


@dataclass(frozen=True)
class Limit:
    """``count`` events per ``period``, bursting to ``burst`` (``burst >= 1``)."""

    name: str
    count: int
    period: timedelta
    burst: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.burst < 1 or self.period <= _ZERO:
            raise ValueError(f"limit {self.name}: count, burst and period must be positive")

    @property
    def interval(self) -> timedelta:
        """The emission interval: the time one unit of the limit takes to free up."""
        return self.period / self.count

    @property
    def burst_offset(self) -> timedelta:
        return self.interval * self.burst


@dataclass(frozen=True)
class Decision:
    """The outcome of one spend. ``tat`` is the bucket's new TAT (unchanged when denied).

    ``remaining`` is how many more unit spends would be allowed right now; ``retry_in`` how
    long until this spend would be allowed (zero when allowed); ``reset_in`` how long until the
    bucket is full again.
    """

    allowed: bool
    remaining: int
    retry_in: timedelta
    reset_in: timedelta
    tat: datetime


def maybe_spend(limit: Limit, tat: datetime | None, cost: int, now: datetime) -> Decision:
    """Spend ``cost`` units from the bucket whose TAT is ``tat`` (None: a full, new bucket).

    A cost above the burst can never be allowed; it is denied with ``retry_in`` the time it
    would take the whole burst to free up, so callers never loop on it forever.
    """
    if cost < 0:
        raise ValueError("cost must not be negative")
    current = now if tat is None or tat < now else tat
    new_tat = current + limit.interval * cost
    if new_tat - now <= limit.burst_offset:
        return _decision(limit, True, new_tat, now, _ZERO)
    if cost > limit.burst:
        return _decision(limit, False, current, now, limit.burst_offset)
    return _decision(limit, False, current, now, new_tat - now - limit.burst_offset)


def refund(limit: Limit, tat: datetime | None, cost: int, now: datetime) -> datetime | None:
    """The TAT after giving ``cost`` units back (an operation failed after spending); never
    earlier than now, so a refund cannot create more than a full bucket."""
    if tat is None or cost <= 0:
        return tat
    moved = tat - limit.interval * cost
    return moved if moved > now else now


def _decision(
    limit: Limit, allowed: bool, tat: datetime, now: datetime, retry_in: timedelta
) -> Decision:
    used = max(tat - now, _ZERO)
    remaining = int((limit.burst_offset - used) / limit.interval)
    return Decision(allowed, max(remaining, 0), retry_in, used, tat)
