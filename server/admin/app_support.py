"""Small pieces several handler modules share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from certplane.server.admin.endpoints import ApiCall
from certplane.server.admin.problems import ApiProblem, ApiProblemType, conflict, not_found
from certplane.server.model import EventType, Tenant
from certplane.server.ra.provisioning import (
    ProvisioningConflict,
    ProvisioningError,
    ProvisioningNotFound,
)
from certplane.server.storage.scope import TenantScope


@contextlib.contextmanager
def provisioning_errors() -> Iterator[None]:
    """Control-plane refusals as problems: 404, 409, else 400 with the operator's message."""
    try:
        yield
    except ProvisioningNotFound as exc:
        raise not_found(str(exc).removesuffix(" does not exist")) from None
    except ProvisioningConflict as exc:
        raise conflict(str(exc)) from None
    except ProvisioningError as exc:
        raise ApiProblem(ApiProblemType.INVALID_REQUEST, str(exc)) from None


async def support_list_access(call: ApiCall, tenants: Sequence[Tenant]) -> None:
    """Support saw these tenants' status: the reason goes on each tenant's event log."""
    now = call.services.clock.now()
    for tenant in tenants:
        async with call.services.uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            await tx.events.append(
                EventType.SUPPORT_ACCESS,
                object_type="tenant",
                object_id=tenant.id,
                actor=call.principal.actor,
                now=now,
                reason=call.reason,
                method=call.request.method,
                path=call.request.path,
            )
