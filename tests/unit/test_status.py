"""The pure status rules of RFC 8555 §7.1.6, exhaustively."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from certplane.server.model import AuthzStatus, OrderStatus, authz_status, order_status

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
EARLIER = NOW - timedelta(seconds=1)


@pytest.mark.parametrize("stored", list(AuthzStatus))
def test_authz_status_before_expiry_is_stored(stored):
    assert authz_status(stored, LATER, NOW) is stored


@pytest.mark.parametrize("stored", list(AuthzStatus))
def test_authz_status_after_expiry(stored):
    expected = AuthzStatus.EXPIRED if stored in (AuthzStatus.PENDING, AuthzStatus.VALID) else stored
    assert authz_status(stored, EARLIER, NOW) is expected


def test_authz_expires_exactly_now_is_expired():
    assert authz_status(AuthzStatus.VALID, NOW, NOW) is AuthzStatus.EXPIRED


@pytest.mark.parametrize("stored", [OrderStatus.PROCESSING, OrderStatus.VALID, OrderStatus.INVALID])
def test_decided_orders_stand_whatever_the_authorizations(stored):
    for expires in (EARLIER, LATER):
        assert order_status(stored, expires, [AuthzStatus.INVALID], NOW) is stored


def _expected(statuses: tuple[AuthzStatus, ...]) -> OrderStatus:
    if any(s not in (AuthzStatus.PENDING, AuthzStatus.VALID) for s in statuses):
        return OrderStatus.INVALID
    if all(s is AuthzStatus.VALID for s in statuses):
        return OrderStatus.READY
    return OrderStatus.PENDING


@pytest.mark.parametrize(
    "statuses",
    [combo for n in (1, 2, 3) for combo in itertools.product(list(AuthzStatus), repeat=n)],
)
def test_pending_order_follows_its_authorizations(statuses):
    assert order_status(OrderStatus.PENDING, LATER, statuses, NOW) is _expected(statuses)


def test_expired_pending_order_is_invalid_even_if_ready():
    assert (
        order_status(OrderStatus.PENDING, EARLIER, [AuthzStatus.VALID], NOW) is OrderStatus.INVALID
    )


def test_order_without_authorizations_stays_pending():
    assert order_status(OrderStatus.PENDING, LATER, [], NOW) is OrderStatus.PENDING
