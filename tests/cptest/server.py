"""A certplane server in a thread of its own, on loopback, for tests that use sync clients."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from certplane.ca.keys.envelope import MasterKey
from certplane.server.admin.bootstrap import create_token
from certplane.server.app import DATABASE, SERVICES, WORKER, api_listener_app, create_app
from certplane.server.clock import Clock, SystemClock
from certplane.server.config import (
    LIMIT_KEYS,
    AcmeConfig,
    ApiConfig,
    CaConfig,
    Config,
    DatabaseConfig,
    KeystoreConfig,
    LimitsConfig,
    ServerConfig,
    TestingConfig,
    ValidationConfig,
    WebhooksConfig,
)
from certplane.server.keystores import build_keystore
from certplane.server.ra.provisioning import NewEab, Provisioner
from certplane.server.storage.db import Database
from certplane.server.storage.migrate import upgrade
from certplane.server.storage.uow import UnitOfWork
from cptest.net import free_port
from cptest.secrets import remember
from cptest.sqlguard import TenantSqlGuard

# Every limit of [limits] off (tests turn on the ones they test).
LIMITS_OFF = LimitsConfig(**dict.fromkeys(LIMIT_KEYS, ""))


def make_config(
    data_dir: Path,
    db_url: str,
    *,
    http01_port: int = 80,
    tlsalpn01_port: int = 443,
    dns_servers: tuple[str, ...] = (),
    testing: TestingConfig | None = None,
    acme: AcmeConfig | None = None,
    keystore: KeystoreConfig | None = None,
    ca: CaConfig | None = None,
    limits: LimitsConfig | None = None,
) -> Config:
    port = free_port()
    return Config(
        api=ApiConfig(listen_port=free_port(), calls_per_token=""),
        webhooks=WebhooksConfig(allowed_networks=("127.0.0.0/8",), timeout_seconds=5),
        data_dir=str(data_dir),
        server=ServerConfig(
            listen_host="127.0.0.1", listen_port=port, base_url=f"http://127.0.0.1:{port}"
        ),
        database=DatabaseConfig(url=db_url),
        keystore=keystore or KeystoreConfig(master_key_file="master.key"),
        ca=ca or CaConfig(),
        # Suites create hundreds of accounts and orders per tenant: limits are off unless a
        # test turns them on (tests/integration/test_rate_limits.py).
        limits=limits or LIMITS_OFF,
        acme=acme
        or AcmeConfig(
            caa_identities=("certplane.test",), finalize_deadline_seconds=5, orders_page_size=2
        ),
        validation=ValidationConfig(
            allowed_networks=("127.0.0.0/8", "::1/128"),
            http01_port=http01_port,
            tlsalpn01_port=tlsalpn01_port,
            dns_servers=dns_servers,
            timeout_seconds=5,
            localhost_names=True,
        ),
        testing=testing or TestingConfig(),
    )


@dataclass
class Platform:
    """What the setup created: tenant slugs and one unused EAB key per tenant."""

    config: Config
    eab: dict[str, NewEab] = field(default_factory=dict)
    root_pem: bytes = b""

    def directory(self, slug: str) -> str:
        return f"{self.config.server.base_url}/acme/{slug}/directory"


async def _provision(config: Config, tenants: dict[str, bool]) -> Platform:
    master_key = MasterKey.generate()
    remember(master_key.material)
    master_key.write_master_key_file(config.data_path("master.key"))
    db = Database(config.database.url)
    try:
        await upgrade(db.engine)
        master = MasterKey.from_file(config.data_path("master.key"))
        prov = Provisioner(
            UnitOfWork(db), build_keystore(config, master), master, config.ca, SystemClock()
        )
        root = await prov.init_platform_ca()
        platform = Platform(config, root_pem=root.public_bytes(Encoding.PEM))
        for slug, eab_required in tenants.items():
            await prov.create_tenant(slug, slug.title(), eab_required=eab_required)
            platform.eab[slug] = await prov.create_eab(slug, "test")
            remember(platform.eab[slug].hmac_key)
        return platform
    finally:
        await db.dispose()


class RecordingProvisioner(Provisioner):
    """Remembers every EAB HMAC key it creates, for the log scan."""

    async def create_eab(self, slug: str, label: str = "") -> NewEab:
        key = await super().create_eab(slug, label)
        remember(key.hmac_key)
        return key


class ServerThread:
    """Runs ``create_app(config)`` on its own event loop until ``stop``."""

    def __init__(self, config: Config, *, clock: Clock | None = None, resolver: Any = None) -> None:
        self.config = config
        self._clock = clock
        self._resolver = resolver
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.sql_guard = TenantSqlGuard()
        self.app: web.Application | None = None
        self._api_runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        """The management API's base URL (its own listener)."""
        return f"http://127.0.0.1:{self.config.api.listen_port}/api/v1"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a coroutine factory on the server's loop and wait for its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(fn(), self._loop)
        return future.result(timeout=120)

    def start(self) -> ServerThread:
        self._thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self.app = create_app(
            self.config, clock=self._clock, resolver=self._resolver, check_responses=True
        )
        self.sql_guard.install(self.app[DATABASE].engine)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.server.listen_port)
        await site.start()
        self._api_runner = web.AppRunner(api_listener_app(self.app), access_log=None)
        await self._api_runner.setup()
        await web.TCPSite(self._api_runner, "127.0.0.1", self.config.api.listen_port).start()

    def token(self, principal: str, *roles: str, tenant: str | None = None) -> str:
        """A bearer token minted directly (as ``certplane token create`` does)."""
        assert self.app is not None
        services = self.app[SERVICES]

        async def mint() -> str:
            new = await create_token(
                services.uow,
                services.clock,
                principal=principal,
                roles=list(roles),
                tenant_slug=tenant,
                label="test",
                lifetime=timedelta(days=30),
            )
            return new.secret

        secret: str = self.call(mint)
        remember(secret)
        remember(secret.rsplit("_", 1)[1])
        return secret

    def drain(self) -> None:
        """Wait until every background validation and issuance task has finished."""
        assert self.app is not None
        self.call(self.app[SERVICES].tasks.drain)

    def provisioner(self) -> Provisioner:
        """The control plane over the running server's database (call it through ``call``)."""
        assert self.app is not None
        services = self.app[SERVICES]
        master = MasterKey.from_file(self.config.data_path("master.key"))
        return RecordingProvisioner(
            services.uow,
            services.keystore,
            master,
            self.config.ca,
            services.clock,
            tiers=self.config.limits.tiers.keys(),
        )

    def run_worker_once(self) -> int:
        assert self.app is not None
        return int(self.call(self.app[WORKER].run_once))

    def stop(self) -> None:
        if self._api_runner is not None:
            self.call(self._api_runner.cleanup)
        if self._runner is not None:
            self.call(self._runner.cleanup)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def provision(config: Config, tenants: dict[str, bool]) -> Platform:
    return asyncio.run(_provision(config, tenants))


def with_testing(config: Config, **knobs: Any) -> Config:
    return dataclasses.replace(config, testing=dataclasses.replace(config.testing, **knobs))
