"""GCRA buckets in the database (ARCHITECTURE §7): shared by every process, atomic under
concurrency, refunded by a rollback or explicitly; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from certplane.policy.ratelimits.gcra import Limit
from certplane.policy.ratelimits.limiter import give_back, spend
from certplane.server.app import SERVICES
from certplane.server.storage.scope import TenantScope

LIMIT = Limit("test-orders", count=10, period=timedelta(hours=1), burst=10)
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _run(server, slug: str, body):
    services = server.app[SERVICES]

    async def go():
        async with services.uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(slug)
        return await body(services.uow, TenantScope(tenant.id, tenant.slug))

    return server.call(go)


async def _spend(uow, scope, key, now=NOW, cost=1):
    async with uow.begin(scope) as tx:
        return await spend(tx.rate_buckets, LIMIT, key, now, cost)


def test_spends_until_the_limit_then_says_when(server):
    async def body(uow, scope):
        decisions = [await _spend(uow, scope, "seq") for _ in range(11)]
        assert [d.allowed for d in decisions] == [True] * 10 + [False]
        assert decisions[-1].retry_in == timedelta(minutes=6)
        later = await _spend(uow, scope, "seq", NOW + timedelta(minutes=6))
        assert later.allowed

    _run(server, "alpha", body)


def test_concurrent_spends_never_exceed_the_limit(server):
    """Thirty transactions race for ten units: exactly ten win, whatever the interleaving."""

    async def body(uow, scope):
        decisions = await asyncio.gather(*(_spend(uow, scope, "race") for _ in range(30)))
        assert sum(d.allowed for d in decisions) == 10

    _run(server, "alpha", body)


def test_a_rolled_back_operation_is_refunded(server):
    async def body(uow, scope):
        with pytest.raises(RuntimeError):
            async with uow.begin(scope) as tx:
                assert (await spend(tx.rate_buckets, LIMIT, "rollback", NOW, 10)).allowed
                raise RuntimeError("the operation failed after spending")
        assert (await _spend(uow, scope, "rollback", cost=10)).allowed

    _run(server, "alpha", body)


def test_explicit_refund_after_commit(server):
    async def body(uow, scope):
        assert (await _spend(uow, scope, "refund", cost=10)).allowed
        assert not (await _spend(uow, scope, "refund")).allowed
        async with uow.begin(scope) as tx:
            await give_back(tx.rate_buckets, LIMIT, "refund", NOW, 2)
        assert [(await _spend(uow, scope, "refund")).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]

    _run(server, "alpha", body)


def test_buckets_are_per_tenant(server):
    """The same key at two tenants is two buckets."""

    async def exhaust(uow, scope):
        return (await _spend(uow, scope, "shared-name", cost=10)).allowed

    assert _run(server, "alpha", exhaust)
    assert _run(server, "beta", exhaust)
