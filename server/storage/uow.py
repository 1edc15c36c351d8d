"""Units of work: ``uow.begin(scope)`` is the only way request code reaches the database.

A unit of work commits when its block exits normally and rolls back on any exception. The
tenant-scoped ``TenantTx`` exposes only scoped repositories (ARCHITECTURE.md §4.1).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from certplane.server.model import Tenant
from certplane.server.storage.api_store import ApiStore
from certplane.server.storage.db import Database, DbConnection
from certplane.server.storage.platform import PlatformRepo
from certplane.server.storage.repos.accounts import AccountRepo
from certplane.server.storage.repos.approvals import ApprovalRepo
from certplane.server.storage.repos.certificates import CertificateRepo, IssuerRepo, JobRepo
from certplane.server.storage.repos.eab import EabRepo
from certplane.server.storage.repos.events import EventRepo
from certplane.server.storage.repos.host_inventory import HostInventoryRepo
from certplane.server.storage.repos.inventory import InventoryRepo
from certplane.server.storage.repos.nonces import NonceRepo
from certplane.server.storage.repos.orders import AuthzRepo, OrderRepo
from certplane.server.storage.repos.policies import PolicyRepo
from certplane.server.storage.repos.ratelimits import RateBucketRepo
from certplane.server.storage.repos.webhooks import WebhookRepo
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.tenant_cache import TenantCache

log = logging.getLogger(__name__)


class TenantTx:
    """One transaction, one tenant: every attribute is a repository scoped to it."""

    def __init__(self, conn: DbConnection, scope: TenantScope) -> None:
        self.scope = scope
        self.committed_actions: list[Callable[[], object]] = []
        self.rollback_actions: list[Callable[[], Awaitable[None]]] = []
        self.accounts = AccountRepo(conn, scope)
        self.orders = OrderRepo(conn, scope)
        self.authzs = AuthzRepo(conn, scope)
        self.certificates = CertificateRepo(conn, scope)
        self.issuers = IssuerRepo(conn, scope)
        self.eab = EabRepo(conn, scope)
        self.events = EventRepo(conn, scope)
        self.nonces = NonceRepo(conn, scope)
        self.jobs = JobRepo(conn, scope)
        self.rate_buckets = RateBucketRepo(conn, scope)
        self.policies = PolicyRepo(conn, scope)
        self.approvals = ApprovalRepo(conn, scope)
        self.webhooks = WebhookRepo(conn, scope)
        self.inventory = InventoryRepo(conn, scope)
        self.host_inventory = HostInventoryRepo(conn, scope)

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once this transaction has committed (never after a rollback).

        For work that must see the committed state: a background validation or issuance.
        """
        self.committed_actions.append(action)

    def after_rollback(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` (in a transaction of its own) if this transaction rolls back.

        For the record of a refusal: the refused request's own writes are undone.
        """
        self.rollback_actions.append(action)


class ProvisioningTx:
    """Control-plane only: creating a tenant writes its registry row and its first issuer."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn
        self.platform = PlatformRepo(conn)

    def tenant(self, scope: TenantScope) -> TenantTx:
        return TenantTx(self._conn, scope)


class UnitOfWork:
    """Transactions over one database, and the tenant registry as the request path sees it.

    ``tenant_cache_seconds`` bounds how stale ``tenants.by_slug`` may be (0: never cached).
    A platform or provisioning transaction of this process clears the cache when it commits.
    """

    def __init__(self, db: Database, *, tenant_cache_seconds: float = 0.0) -> None:
        self.db = db
        self.tenants = TenantCache(self._tenant_by_slug, tenant_cache_seconds)

    @contextlib.asynccontextmanager
    async def begin(self, scope: TenantScope, *, write: bool = True) -> AsyncIterator[TenantTx]:
        tx: TenantTx | None = None
        try:
            async with self.db.transaction(write=write) as conn:
                tx = TenantTx(conn, scope)
                yield tx
        except Exception:
            for undone in tx.rollback_actions if tx is not None else ():
                try:
                    await undone()
                except Exception:  # the refusal itself must still reach the client
                    log.exception("recording after a rollback failed")
            raise
        for action in tx.committed_actions:
            action()

    @contextlib.asynccontextmanager
    async def provisioning(self) -> AsyncIterator[ProvisioningTx]:
        """One transaction over platform records and a tenant's records (tenant creation)."""
        async with self.db.transaction(write=True) as conn:
            yield ProvisioningTx(conn)
        self.tenants.invalidate()

    @contextlib.asynccontextmanager
    async def platform(self, *, write: bool = True) -> AsyncIterator[PlatformRepo]:
        """Platform records (tenants, platform CAs): for the control plane and tenant lookup."""
        async with self.db.transaction(write=write) as conn:
            yield PlatformRepo(conn)
        if write:
            self.tenants.invalidate()

    @contextlib.asynccontextmanager
    async def api(self, *, write: bool = True) -> AsyncIterator[ApiStore]:
        """Management API tokens and idempotency records (no tenant scope: see api_store)."""
        async with self.db.transaction(write=write) as conn:
            yield ApiStore(conn)

    async def _tenant_by_slug(self, slug: str) -> Tenant | None:
        async with self.platform(write=False) as platform:
            return await platform.tenant_by_slug(slug)
