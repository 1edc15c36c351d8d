"""Tenant resolution by slug for the request path, cached for a short, bounded time.

Every ACME request resolves ``/acme/{slug}/…`` to its tenant. The tenant registry changes
rarely (an operator creates, suspends or activates a tenant), so each process keeps what it
read for at most ``max_age`` seconds (``server.tenant_cache_seconds``).

NOTE(tenant-cache): the bound is the contract. A tenant suspended by *another* process (the
``certplane`` CLI, another replica) is served from this cache for at most ``max_age`` seconds;
a change made through this process's ``UnitOfWork`` clears the cache when it commits. Unknown
slugs are never cached, so a new tenant is visible at once. ``max_age`` 0 disables the cache.
The cache sits in front of the platform registry only, never of a tenant-scoped repository.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from certplane.server.model import Tenant

TenantLookup = Callable[[str], Awaitable[Tenant | None]]


class TenantCache:
    """``Tenant`` by slug, re-read from the database once an entry is ``max_age`` seconds old."""

    def __init__(
        self,
        lookup: TenantLookup,
        max_age: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._max_age = max_age
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Tenant]] = {}
        self._generation = 0

    async def by_slug(self, slug: str) -> Tenant | None:
        """The tenant with this slug, at most ``max_age`` seconds old; None when unknown."""
        now = self._monotonic()
        entry = self._entries.get(slug)
        if entry is not None and now - entry[0] < self._max_age:
            return entry[1]
        generation = self._generation
        tenant = await self._lookup(slug)
        if tenant is None:
            self._entries.pop(slug, None)
        elif self._max_age > 0 and generation == self._generation:
            # An invalidation during the lookup may have made this read stale: keep it uncached.
            self._entries[slug] = (now, tenant)
        return tenant

    def invalidate(self) -> None:
        """Forget every entry (called when this process changed the tenant registry)."""
        self._generation += 1
        self._entries.clear()
