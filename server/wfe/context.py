"""Typed application state and per-request values of the web front end."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from certplane.ca.keys.api import KeyStore
from certplane.server.clock import Clock
from certplane.server.config import Config
from certplane.server.model import Tenant
from certplane.server.ra.accounts import AccountService
from certplane.server.ra.authorizations import AuthorizationService
from certplane.server.ra.crls import CrlService
from certplane.server.ra.deps import BackgroundTasks
from certplane.server.ra.inventory import InventoryService
from certplane.server.ra.issuance import IssuanceService
from certplane.server.ra.ocsp import OcspService
from certplane.server.ra.orders import OrderService
from certplane.server.ra.policies import PolicyService
from certplane.server.ra.renewal_info import RenewalInfoService
from certplane.server.ra.revocation import RevocationService
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import UnitOfWork
from certplane.server.wfe.client_address import TrustedProxies
from certplane.server.wfe.hostile import NonceRejecter
from certplane.server.wfe.links import Links
from certplane.server.wfe.nonces import NonceService


@dataclass
class Services:
    config: Config
    uow: UnitOfWork
    clock: Clock
    nonces: NonceService
    accounts: AccountService
    orders: OrderService
    authzs: AuthorizationService
    issuance: IssuanceService
    revocation: RevocationService
    crls: CrlService
    ocsp: OcspService
    renewal_info: RenewalInfoService
    tasks: BackgroundTasks
    keystore: KeyStore
    policies: PolicyService
    inventory: InventoryService
    # Hostile knob (tests only): reject a share of valid nonces.
    nonce_rejecter: NonceRejecter = field(default_factory=lambda: NonceRejecter(0))
    # Whose X-Forwarded-For names the client (server.trusted_proxies).
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


SERVICES = web.AppKey("services", Services)


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant
    scope: TenantScope
    links: Links


TENANT = web.RequestKey("tenant", TenantContext)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def tenant_context(request: web.Request) -> TenantContext:
    return request[TENANT]
