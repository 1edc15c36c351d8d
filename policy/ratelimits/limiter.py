"""Spending from GCRA buckets through a store: the limiter of ARCHITECTURE §7.

The store is a port: the server's is a table shared by every process, used inside the request's
transaction, so a spend commits or rolls back with the operation it pays for (an operation that
fails in that transaction is refunded by the rollback). ``refund`` gives units back for work that
fails later, after its transaction committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .gcra import Decision, Limit, maybe_spend, refund

__all__ = ["BucketStore", "give_back", "spend"]


class BucketStore(Protocol):
    async def lock(self, key: str, now: datetime) -> datetime:
        """The TAT of ``key`` (a new bucket is full), held until the caller's transaction ends."""
        ...

    async def store(self, key: str, tat: datetime) -> None: ...


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
