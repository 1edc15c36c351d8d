"""The application factory: ``create_app(config)`` wires every authority together."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from certplane.ca.keys.envelope import MasterKey
from certplane.policy.ratelimits.gcra import Limit
from certplane.server.admin.app import PREFIX, create_admin_app, unrouted_middleware
from certplane.server.admin.services import AdminServices
from certplane.server.clock import Clock, SystemClock
from certplane.server.config import Config, parse_host_port, parse_rate
from certplane.server.jobs.webhooks import WebhookSender
from certplane.server.jobs.worker import Worker
from certplane.server.keystores import build_keystore
from certplane.server.ra.accounts import AccountService
from certplane.server.ra.approvals import ApprovalService
from certplane.server.ra.authorizations import AuthorizationService
from certplane.server.ra.crls import CrlService
from certplane.server.ra.deps import AcmeSettings, BackgroundTasks, RADeps
from certplane.server.ra.inventory import InventoryService
from certplane.server.ra.issuance import IssuanceService
from certplane.server.ra.issuers import IssuerRegistry
from certplane.server.ra.limits import rate_limits
from certplane.server.ra.ocsp import OcspService
from certplane.server.ra.orders import OrderService
from certplane.server.ra.policies import PolicyService
from certplane.server.ra.provisioning import Provisioner
from certplane.server.ra.renewal_info import RenewalInfoService
from certplane.server.ra.revocation import RevocationService
from certplane.server.storage.db import Database
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import UnitOfWork
from certplane.server.va.api import NetworkPolicy, Resolver
from certplane.server.va.authority import ValidationAuthority
from certplane.server.va.localhost import LocalhostResolver
from certplane.server.va.resolver import DnsResolver
from certplane.server.wfe.client_address import TrustedProxies
from certplane.server.wfe.context import SERVICES, Services
from certplane.server.wfe.hostile import NonceRejecter
from certplane.server.wfe.links import Links
from certplane.server.wfe.middleware import request_middleware, tenant_middleware
from certplane.server.wfe.nonces import NonceService
from certplane.server.wfe.routes import add_routes

log = logging.getLogger(__name__)

WORKER = web.AppKey("worker", Worker)
DATABASE = web.AppKey("database", Database)
# The management API application (mounted at /api/v1 of the ACME listener, or of its own).
ADMIN_APP = web.AppKey("admin_app", web.Application)


def load_master_key(config: Config) -> MasterKey:
    if config.keystore.master_key_env:
        return MasterKey.from_env(config.keystore.master_key_env)
    return MasterKey.from_file(config.data_path(config.keystore.master_key_file))


def network_policy(config: Config) -> NetworkPolicy:
    v = config.validation
    return NetworkPolicy(
        allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in v.allowed_networks),
        http01_port=v.http01_port,
        tlsalpn01_port=v.tlsalpn01_port,
        dns_servers=tuple(
            parse_host_port(s, "validation.dns_servers", default_port=53) for s in v.dns_servers
        ),
        timeout_seconds=v.timeout_seconds,
    )


def _resolver(config: Config, policy: NetworkPolicy) -> Resolver:
    resolver: Resolver = DnsResolver(policy)
    if config.validation.localhost_names:
        resolver = LocalhostResolver(resolver)
    return resolver


def _nonce_secret(master: MasterKey) -> bytes:
    return hmac.new(master.material, b"certplane nonce key v1", hashlib.sha256).digest()


def build_services(
    config: Config,
    db: Database,
    *,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    check_responses: bool = False,
) -> tuple[Services, Worker, AdminServices]:
    """Every collaborator, built once; tests pass a fake clock or resolver."""
    clock = clock or SystemClock()
    master = load_master_key(config)
    uow = UnitOfWork(db, tenant_cache_seconds=config.server.tenant_cache_seconds)
    base = config.server.base_url
    policy = network_policy(config)
    for line in policy.describe_overrides():
        log.warning("validation override: %s", line)
    va = ValidationAuthority(resolver or _resolver(config, policy), policy)
    tasks = BackgroundTasks()
    policies = PolicyService(uow, config.policy.cel_time_limit_seconds)
    deps = RADeps(
        uow=uow,
        clock=clock,
        settings=AcmeSettings.from_config(config.acme, config.ca, config.testing),
        master_key=master,
        account_uri=lambda scope, account_id: Links(base, scope.slug).account(account_id),
        tasks=tasks,
        policies=policies,
        limits=rate_limits(config.limits),
    )
    crl_for = functools.partial(crl_url, base)
    keystore = build_keystore(config, master)
    issuers = IssuerRegistry(
        keystore,
        crl_for,
        ocsp_url=functools.partial(ocsp_url, base),
        ca_issuers_url=functools.partial(ca_issuers_url, base),
    )
    authzs = AuthorizationService(deps, va)
    issuance = IssuanceService(deps, issuers)
    services = Services(
        config=config,
        uow=uow,
        clock=clock,
        nonces=NonceService(
            _nonce_secret(master), timedelta(seconds=config.acme.nonce_lifetime_seconds)
        ),
        accounts=AccountService(deps),
        orders=OrderService(deps),
        authzs=authzs,
        issuance=issuance,
        revocation=RevocationService(deps),
        crls=CrlService(deps, issuers, crl_for),
        ocsp=OcspService(deps, issuers),
        renewal_info=RenewalInfoService(deps),
        tasks=tasks,
        keystore=keystore,
        policies=policies,
        inventory=InventoryService(deps),
        nonce_rejecter=NonceRejecter(config.testing.nonce_reject_percent),
        trusted_proxies=TrustedProxies.parse(config.server.trusted_proxies),
    )
    approvals = ApprovalService(deps, issuance, policies)
    webhooks = WebhookSender(
        uow,
        clock,
        master,
        [ipaddress.ip_network(n, strict=False) for n in config.webhooks.allowed_networks],
        config.webhooks.timeout_seconds,
    )
    admin = AdminServices(
        config=config,
        uow=uow,
        clock=clock,
        master_key=master,
        provisioner=Provisioner(
            uow, keystore, master, config.ca, clock, tiers=config.limits.tiers.keys()
        ),
        policies=policies,
        approvals=approvals,
        accounts=services.accounts,
        limits=deps.limits,
        call_limit=_call_limit(config),
        token_lifetime=timedelta(days=config.api.token_lifetime_days),
        idempotency_window=timedelta(hours=config.api.idempotency_hours),
        check_responses=check_responses,
    )
    worker = Worker(
        db,
        clock,
        authzs,
        issuance,
        approvals,
        webhooks,
        idempotency_window=admin.idempotency_window,
    )
    return services, worker, admin


def _call_limit(config: Config) -> Limit | None:
    parsed = parse_rate(config.api.calls_per_token, "api.calls_per_token")
    if parsed is None:
        return None
    count, seconds = parsed
    return Limit("api-calls-per-token", count, timedelta(seconds=seconds), count)


def ca_issuers_url(base_url: str, scope: TenantScope, issuer_id: str) -> str:
    return f"{base_url}/ca/{scope.slug}/{issuer_id}.der"


def ocsp_url(base_url: str, scope: TenantScope, issuer_id: str) -> str:
    return f"{base_url}/ocsp/{scope.slug}/{issuer_id}"


def crl_url(base_url: str, scope: TenantScope, issuer_id: str) -> str:
    return f"{base_url}/crl/{scope.slug}/{issuer_id}.crl"


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    run_worker: bool | None = None,
    check_responses: bool = False,
) -> web.Application:
    """The ACME application; the management API is ``app[ADMIN_APP]``, mounted here at
    ``/api/v1`` when ``api.share_acme_listener`` is set (else served by ``api_listener_app``)."""
    app = web.Application(
        middlewares=[request_middleware, tenant_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    db = Database(config.database.url, echo=config.database.echo)
    services, worker, admin = build_services(
        config, db, clock=clock, resolver=resolver, check_responses=check_responses
    )
    app[SERVICES] = services
    app[WORKER] = worker
    app[DATABASE] = db
    add_routes(app)
    app[ADMIN_APP] = create_admin_app(admin)
    if config.api.enabled and config.api.share_acme_listener:
        app.add_subapp(PREFIX, app[ADMIN_APP])
    app.cleanup_ctx.append(_database_ctx)
    if config.server.run_worker if run_worker is None else run_worker:
        app.cleanup_ctx.append(_worker_ctx)
    return app


def api_listener_app(acme_app: web.Application) -> web.Application:
    """The management API's own listener (``api.listen_host``/``listen_port``): only /api/v1.

    Its lifetime is the ACME application's (which owns the database and the worker).
    """
    listener = web.Application(middlewares=[unrouted_middleware])
    listener.add_subapp(PREFIX, acme_app[ADMIN_APP])
    return listener


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SERVICES].tasks.drain()
    await app[DATABASE].dispose()


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(app[WORKER].run_forever(stop))
    yield
    stop.set()
    await task
