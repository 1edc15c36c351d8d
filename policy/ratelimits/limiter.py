"""Spending from GCRA buckets through a store: the limiter of ARCHITECTURE §7.

The store is a port: the server's is a table shared by every process, used inside the request's
transaction, so a spend commits or rolls back with the operation it pays for (an operation that
fails in that transaction is refunded by the rollback). ``refund`` gives units back for work that
fails later, after its transaction committed. ``peek`` says what a spend would decide without
spending (a check before the work, the usage a tenant is shown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from .gcra import Decision, Limit, maybe_spend, refund

__all__ = ["BucketStore", "give_back", "peek", "spend"]


class BucketStore(Protocol):
    async def lock(self, key: str, now: datetime) -> datetime:
        """The TAT of ``key`` (a new bucket is full), held until the caller's transaction ends."""
        ...

    async def store(self, key: str, tat: datetime) -> None: ...

    async def read(self, keys: Sequence[str]) -> Mapping[str, datetime]:
        """The TATs of those of ``keys`` that have a bucket, neither locked nor created."""
        ...


async def spend(
    store: BucketStore, limit: Limit, key: str, now: datetime, cost: int = 1
) -> Decision:
    """Spend ``cost`` from ``key``'s bucket if ``limit`` allows it; the decision either way."""
    decision = maybe_spend(limit, await store.lock(key, now), cost, now)
    if decision.allowed:
        await store.store(key, decision.tat)
    return decision


async def give_back(
    store: BucketStore, limit: Limit, key: str, now: datetime, cost: int = 1
) -> None:
    """Refund ``cost`` units to ``key``'s bucket (never beyond a full bucket)."""
    tat = refund(limit, await store.lock(key, now), cost, now)
    if tat is not None:
        await store.store(key, tat)


async def peek(
    store: BucketStore, limit: Limit, keys: Sequence[str], now: datetime, cost: int = 1
) -> dict[str, Decision]:
    """What spending ``cost`` from each of ``keys`` would decide now; nothing is spent.

    NOTE(peek): nothing is locked either: a check whose buckets are spent by other work (in
    other transactions) may miss a spend that has not committed yet.
    """
    tats = await store.read(keys)
    return {key: maybe_spend(limit, tats.get(key), cost, now) for key in keys}
