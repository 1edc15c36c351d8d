"""The limiter over a bucket store: ``peek`` says what a spend would decide, and spends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from certplane.policy.ratelimits.gcra import Limit
from certplane.policy.ratelimits.limiter import peek, spend

T0 = datetime(2026, 11, 27, tzinfo=UTC)
FIVE_AN_HOUR = Limit("failures", count=5, period=timedelta(hours=1), burst=5)


class MemoryStore:
    """A BucketStore in a dict; counts the writes."""

    def __init__(self) -> None:
        self.tats: dict[str, datetime] = {}
        self.writes = 0

    async def lock(self, key: str, now: datetime) -> datetime:
        return self.tats.setdefault(key, now)

    async def store(self, key: str, tat: datetime) -> None:
        self.tats[key] = tat
        self.writes += 1

    async def read(self, keys: Sequence[str]) -> Mapping[str, datetime]:
        return {key: self.tats[key] for key in keys if key in self.tats}


def test_peek_reports_without_spending():
    store = MemoryStore()

    async def scenario() -> None:
        fresh = await peek(store, FIVE_AN_HOUR, ["a"], T0)
        assert fresh["a"].allowed and fresh["a"].remaining == 4
        assert store.tats == {} and store.writes == 0  # not even created
        for _ in range(5):
            assert (await spend(store, FIVE_AN_HOUR, "a", T0)).allowed
        writes = store.writes
        both = await peek(store, FIVE_AN_HOUR, ["a", "b"], T0)
        assert not both["a"].allowed and both["a"].retry_in == timedelta(minutes=12)
        assert both["b"].allowed
        assert store.writes == writes
        later = await peek(store, FIVE_AN_HOUR, ["a"], T0 + timedelta(minutes=12))
        assert later["a"].allowed and later["a"].remaining == 0

    asyncio.run(scenario())


def test_peek_of_nothing_is_empty():
    assert asyncio.run(peek(MemoryStore(), FIVE_AN_HOUR, [], T0)) == {}
