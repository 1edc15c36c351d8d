"""Tokens minted from the command line (the first platform-admin token, a break-glass token):
the one way in that does not need a token already."""

from __future__ import annotations

from datetime import timedelta

from certplane.server.admin.auth import NewToken, mint_token
from certplane.server.clock import Clock
from certplane.server.model import EventType
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import UnitOfWork

OPERATOR = "operator"


class UnknownTenant(LookupError):
    pass


async def create_token(
    uow: UnitOfWork,
    clock: Clock,
    *,
    principal: str,
    roles: list[str],
    tenant_slug: str | None,
    label: str,
    lifetime: timedelta,
) -> NewToken:
    """A token created by the operator (no API principal above it).

    Raises:
        UnknownTenant: ``tenant_slug`` names no tenant.
        ValueError: roles, principal or lifetime are not acceptable.
    """
    tenant = None
    if tenant_slug is not None:
        tenant = await uow.tenants.by_slug(tenant_slug)
        if tenant is None:
            raise UnknownTenant(tenant_slug)
    now = clock.now()
    new = mint_token(
        principal=principal,
        roles=roles,
        tenant_id=tenant.id if tenant else None,
        label=label,
        created_by=OPERATOR,
        now=now,
        lifetime=lifetime,
    )
    async with uow.api() as store:
        await store.add_token(new.record)
    if tenant is not None:
        async with uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            await tx.events.append(
                EventType.TOKEN_CREATED,
                object_type="token",
                object_id=new.record.id,
                actor=OPERATOR,
                now=now,
                principal=principal,
                roles=list(new.record.roles),
            )
    return new
