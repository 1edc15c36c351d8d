"""GCRA: exact counts under any schedule, bursts, retry times, refunds (properties included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certplane.policy.ratelimits.gcra import Limit, maybe_spend, refund

T0 = datetime(2026, 11, 27, tzinfo=UTC)
HOURLY_10 = Limit("orders", count=10, period=timedelta(hours=1), burst=10)


def spend_all(limit: Limit, times: list[datetime], cost: int = 1) -> list[bool]:
    tat, allowed = None, []
    for now in times:
        decision = maybe_spend(limit, tat, cost, now)
        allowed.append(decision.allowed)
        tat = decision.tat
    return allowed


def test_a_full_bucket_allows_the_burst_then_denies():
    assert spend_all(HOURLY_10, [T0] * 12) == [True] * 10 + [False] * 2


def test_remaining_counts_down_and_retry_says_when():
    tat = None
    for expected_remaining in range(9, -1, -1):
        decision = maybe_spend(HOURLY_10, tat, 1, T0)
        assert decision.allowed and decision.remaining == expected_remaining
        tat = decision.tat
    denied = maybe_spend(HOURLY_10, tat, 1, T0)
    assert not denied.allowed
    assert denied.retry_in == timedelta(minutes=6)  # one interval: 1 h / 10
    assert denied.reset_in == timedelta(hours=1)
    assert maybe_spend(HOURLY_10, tat, 1, T0 + timedelta(minutes=6)).allowed


def test_the_bucket_refills_at_the_rate():
    times = [T0] * 10 + [T0 + timedelta(minutes=6 * k) for k in range(1, 11)]
    assert all(spend_all(HOURLY_10, times))


def test_a_cost_above_the_burst_is_denied_with_a_finite_retry():
    decision = maybe_spend(HOURLY_10, None, 11, T0)
    assert not decision.allowed and decision.retry_in == timedelta(hours=1)


def test_a_denied_spend_leaves_the_bucket_as_it_was():
    first = maybe_spend(HOURLY_10, None, 10, T0)
    denied = maybe_spend(HOURLY_10, first.tat, 1, T0)
    assert denied.tat == first.tat


def test_refund_gives_units_back_but_never_more_than_a_full_bucket():
    spent = maybe_spend(HOURLY_10, None, 3, T0)
    assert refund(HOURLY_10, spent.tat, 3, T0) == T0
    assert refund(HOURLY_10, spent.tat, 5, T0) == T0
    assert refund(HOURLY_10, spent.tat, 1, T0) == T0 + timedelta(minutes=12)
    assert refund(HOURLY_10, None, 1, T0) is None


@pytest.mark.parametrize(("count", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_nonsense_limits_are_refused(count, burst):
    with pytest.raises(ValueError, match="must be positive"):
        Limit("x", count=count, period=timedelta(hours=1), burst=burst)


offsets = st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=80)


@given(offsets)
def test_never_more_than_burst_plus_rate_in_any_window(raw):
    """Over any window [a, b], allowed events <= burst + (b - a) / interval."""
    times = sorted(T0 + timedelta(seconds=s) for s in raw)
    allowed = [t for t, ok in zip(times, spend_all(HOURLY_10, times), strict=True) if ok]
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            window = allowed[j] - start
            assert j - i + 1 <= HOURLY_10.burst + window / HOURLY_10.interval


@given(offsets)
def test_an_allowed_spend_is_never_refused_at_a_later_time(raw):
    """If a spend is denied, retrying after retry_in is allowed (retry times are honest)."""
    times = sorted(T0 + timedelta(seconds=s) for s in raw)
    tat = None
    for now in times:
        decision = maybe_spend(HOURLY_10, tat, 1, now)
        if not decision.allowed:
            assert maybe_spend(HOURLY_10, tat, 1, now + decision.retry_in).allowed
        tat = decision.tat
