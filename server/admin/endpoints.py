"""The management API as data: one ``Endpoint`` per operation.

The aiohttp routes, the OpenAPI document, the permission matrix in ``docs/permissions.md`` and
the role x endpoint test are all built from this one table, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from certplane.policy.rbac import Permission
from certplane.server.admin.auth import Principal
from certplane.server.model import Tenant
from certplane.server.storage.scope import TenantScope

if TYPE_CHECKING:
    from certplane.server.admin.services import AdminServices


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass
class ApiCall:
    """One authenticated call: who, which tenant (for tenant paths), and its validated input."""

    request: web.Request
    services: AdminServices
    principal: Principal
    tenant: Tenant | None
    body: Any
    query: dict[str, Any]
    reason: str | None = None

    @property
    def scope(self) -> TenantScope:
        assert self.tenant is not None, "a tenant endpoint"
        return TenantScope(self.tenant.id, self.tenant.slug)

    def path(self, name: str) -> str:
        return self.request.match_info[name]


@dataclass(frozen=True)
class Answer:
    body: Any
    status: int = 200
    location: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[ApiCall], Awaitable[Answer]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # relative to /api/v1, with {tenant} etc.
    operation_id: str
    permission: Permission | None  # None: public (the OpenAPI document)
    summary: str
    handler: Handler
    response: dict[str, Any]
    status: int = 200
    request: dict[str, Any] | None = None
    query: tuple[QueryParam, ...] = ()
    tag: str = ""
    description: str = ""
    # A body that is not JSON (a policy in YAML): media types accepted besides JSON.
    raw_body: tuple[str, ...] = ()

    @property
    def tenant_scoped(self) -> bool:
        return self.path.startswith("/tenants/{tenant}")


class EndpointTable:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        operation_id: str,
        permission: Permission | None,
        summary: str,
        response: dict[str, Any],
        status: int = 200,
        request: dict[str, Any] | None = None,
        query: tuple[QueryParam, ...] = (),
        tag: str = "",
        description: str = "",
        raw_body: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    operation_id=operation_id,
                    permission=permission,
                    summary=summary,
                    handler=handler,
                    response=response,
                    status=status,
                    request=request,
                    query=query,
                    tag=tag,
                    description=description,
                    raw_body=raw_body,
                )
            )
            return handler

        return register


API = EndpointTable()
