"""Platform records that belong to no tenant: the tenant registry and the platform CAs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from certplane.server.model import Tenant, TenantStatus
from certplane.server.storage import tables as t
from certplane.server.storage.db import DbConnection
from certplane.server.storage.scope import new_id


def _tenant(row: Mapping[str, Any]) -> Tenant:
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        display_name=row["display_name"],
        status=TenantStatus(row["status"]),
        external_account_required=row["external_account_required"],
        created_at=row["created_at"],
        aia_ocsp=bool(row["aia_ocsp"]),
        aia_ca_issuers=bool(row["aia_ca_issuers"]),
        limit_overrides=json.loads(row["limit_overrides"]),
        tier=row["tier"],
        policy_version=row["policy_version"],
        webhook_url=row["webhook_url"],
    )


_TENANT_BY_SLUG = select(t.tenants).where(t.tenants.c.slug == bindparam("slug"))
_SET_WEBHOOK = update(t.tenants).where(t.tenants.c.id == bindparam("w_id"))


class PlatformRepo:
    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn

    async def tenant_by_slug(self, slug: str) -> Tenant | None:
        row = await self._conn.execute(_TENANT_BY_SLUG, {"slug": slug})
        found = row.mappings().first()
        return None if found is None else _tenant(found)

    async def tenant_by_id(self, tenant_id: str) -> Tenant | None:
        row = await self._conn.execute(select(t.tenants).where(t.tenants.c.id == tenant_id))
        found = row.mappings().first()
        return None if found is None else _tenant(found)

    async def tenants(self) -> list[Tenant]:
        rows = await self._conn.execute(select(t.tenants).order_by(t.tenants.c.slug))
        return [_tenant(r) for r in rows.mappings().all()]

    async def create_tenant(
        self, slug: str, display_name: str, *, eab_required: bool, now: datetime
    ) -> Tenant:
        tenant_id = new_id()
        await self._conn.execute(
            insert(t.tenants).values(
                id=tenant_id,
                slug=slug,
                display_name=display_name,
                status=TenantStatus.ACTIVE.value,
                external_account_required=eab_required,
                created_at=now,
            )
        )
        tenant = await self.tenant_by_slug(slug)
        assert tenant is not None
        return tenant

    async def set_tenant_status(self, tenant_id: str, status: TenantStatus) -> None:
        stmt = update(t.tenants).where(t.tenants.c.id == tenant_id).values(status=status.value)
        await self._conn.execute(stmt)

    async def set_tenant_aia(self, tenant_id: str, *, ocsp: bool, ca_issuers: bool) -> None:
        stmt = (
            update(t.tenants)
            .where(t.tenants.c.id == tenant_id)
            .values(aia_ocsp=ocsp, aia_ca_issuers=ca_issuers)
        )
        await self._conn.execute(stmt)

    async def set_tenant_limits(self, tenant_id: str, overrides: Mapping[str, str]) -> None:
        stmt = (
            update(t.tenants)
            .where(t.tenants.c.id == tenant_id)
            .values(limit_overrides=json.dumps(dict(sorted(overrides.items()))))
        )
        await self._conn.execute(stmt)

    async def webhook_secret(self, tenant_id: str) -> bytes | None:
        """The tenant's sealed webhook key (opened only by the sender)."""
        stmt = select(t.tenants.c.webhook_secret_sealed).where(t.tenants.c.id == tenant_id)
        sealed: bytes | None = (
            (await self._conn.execute(stmt)).mappings().first()["webhook_secret_sealed"]
        )
        return sealed

    async def set_webhook(self, tenant_id: str, url: str, sealed_secret: bytes | None) -> None:
        params = {"w_id": tenant_id, "webhook_url": url, "webhook_secret_sealed": sealed_secret}
        await self._conn.execute(_SET_WEBHOOK, params)

    async def set_tenant_tier(self, tenant_id: str, tier: str) -> None:
        stmt = update(t.tenants).where(t.tenants.c.id == tenant_id).values(tier=tier)
        await self._conn.execute(stmt)

    async def platform_ca(self, role: str) -> Mapping[str, Any] | None:
        stmt = select(t.platform_cas).where(
            t.platform_cas.c.role == role, t.platform_cas.c.active.is_(True)
        )
        row: Mapping[str, Any] | None = (await self._conn.execute(stmt)).mappings().first()
        return row

    async def add_platform_ca(
        self, role: str, certificate_pem: str, key_ref: str, now: datetime
    ) -> str:
        ca_id = new_id()
        await self._conn.execute(
            insert(t.platform_cas).values(
                id=ca_id,
                role=role,
                certificate_pem=certificate_pem,
                key_ref=key_ref,
                active=True,
                created_at=now,
            )
        )
        return ca_id
