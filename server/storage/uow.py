"""Units of work: ``uow.begin(scope)`` is the only way request code reaches the database.

A unit of work commits when its block exits normally and rolls back on any exception. The
tenant-scoped ``TenantTx`` exposes only scoped repositories (ARCHITECTURE.md §4.1).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection

from certplane.server.storage.db import Database
from certplane.server.storage.platform import PlatformRepo
from certplane.server.storage.repos.accounts import AccountRepo
from certplane.server.storage.repos.certificates import CertificateRepo, IssuerRepo, JobRepo
from certplane.server.storage.repos.eab import EabRepo
from certplane.server.storage.repos.events import EventRepo
from certplane.server.storage.repos.nonces import NonceRepo
from certplane.server.storage.repos.orders import AuthzRepo, OrderRepo
from certplane.server.storage.scope import TenantScope


class TenantTx:
    """One transaction, one tenant: every attribute is a repository scoped to it."""

    def __init__(self, conn: AsyncConnection, scope: TenantScope) -> None:
        self.scope = scope
        self.accounts = AccountRepo(conn, scope)
        self.orders = OrderRepo(conn, scope)
        self.authzs = AuthzRepo(conn, scope)
        self.certificates = CertificateRepo(conn, scope)
        self.issuers = IssuerRepo(conn, scope)
        self.eab = EabRepo(conn, scope)
        self.events = EventRepo(conn, scope)
        self.nonces = NonceRepo(conn, scope)
        self.jobs = JobRepo(conn, scope)


class ProvisioningTx:
    """Control-plane only: creating a tenant writes its registry row and its first issuer."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.platform = PlatformRepo(conn)

    def tenant(self, scope: TenantScope) -> TenantTx:
        return TenantTx(self._conn, scope)


class UnitOfWork:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def begin(self, scope: TenantScope, *, write: bool = True) -> AsyncIterator[TenantTx]:
        async with self.db.transaction(write=write) as conn:
            yield TenantTx(conn, scope)

    @contextlib.asynccontextmanager
    async def provisioning(self) -> AsyncIterator[ProvisioningTx]:
        """One transaction over platform records and a tenant's records (tenant creation)."""
        async with self.db.transaction(write=True) as conn:
            yield ProvisioningTx(conn)

    @contextlib.asynccontextmanager
    async def platform(self, *, write: bool = True) -> AsyncIterator[PlatformRepo]:
        """Platform records (tenants, platform CAs): for the control plane and tenant lookup."""
        async with self.db.transaction(write=write) as conn:
            yield PlatformRepo(conn)
