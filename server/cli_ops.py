"""What each ``certplane`` command does; ``cli.py`` only parses arguments and prints."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certplane.ca.files import write_file_atomically
from certplane.ca.keys.api import KeyAlgorithm, key_algorithm, ref_scheme
from certplane.ca.keys.envelope import MasterKey
from certplane.ca.keys.errors import KeystoreError
from certplane.server.admin.views import eab_json, tenant_json
from certplane.server.app import api_listener_app, create_app, load_master_key
from certplane.server.clock import SystemClock
from certplane.server.config import Config
from certplane.server.keystores import build_keystore
from certplane.server.model import HierarchyPattern, IssuerRecord, TenantStatus
from certplane.server.ra.provisioning import (
    MAX_DISPLAY_NAME,
    IssuerSpec,
    Provisioner,
    ProvisioningError,
)
from certplane.server.storage.db import Database
from certplane.server.storage.migrate import current_revision, head_revision, upgrade
from certplane.server.storage.uow import UnitOfWork

DEMO_TENANT = "demo"


class OutputError(Exception):
    """A command failed; the message says why and what to do."""


def _issuer_json(record: IssuerRecord) -> dict[str, Any]:
    cert = (
        x509.load_pem_x509_certificate(record.certificate_pem.encode())
        if record.certificate_pem
        else None
    )
    algorithm = ""
    if cert is not None:
        public = cert.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            algorithm = key_algorithm(public).value
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "pattern": record.pattern,
        "algorithm": algorithm,
        "subject": cert.subject.rfc4514_string() if cert else "",
        "not_after": cert.not_valid_after_utc.isoformat() if cert else None,
        "keystore": ref_scheme(record.key_ref),
        "retired_at": record.retired_at.isoformat() if record.retired_at else None,
        "alternate_chains": len(record.alternate_chains),
        "ocsp_responder_until": _not_after(record.ocsp_responder_pem),
    }


def _not_after(pem: str | None) -> str | None:
    if pem is None:
        return None
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc.isoformat()


def _limit_change(item: str) -> tuple[str, str | None]:
    """ "NAME=RATE" -> (name, rate): "off" -> "" (off for the tenant), "default" -> None."""
    name, sep, rate = item.partition("=")
    if not sep or not name:
        raise OutputError(f"--limit expects NAME=RATE, got {item!r}")
    return name, {"off": "", "default": None}.get(rate, rate)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _read_text(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None


class Operations:
    def __init__(self, config: Config, *, json_output: bool) -> None:
        self.config = config
        self.json = json_output

    @contextlib.asynccontextmanager
    async def _provisioner(self) -> AsyncIterator[Provisioner]:
        db = Database(self.config.database.url)
        try:
            await self._require_schema(db)
            master = self._master_key()
            keystore = build_keystore(self.config, master)
            yield Provisioner(
                UnitOfWork(db),
                keystore,
                master,
                self.config.ca,
                SystemClock(),
                tiers=self.config.limits.tiers.keys(),
            )
        except (ProvisioningError, KeystoreError) as exc:
            raise OutputError(str(exc)) from None
        finally:
            await db.dispose()

    def _master_key(self) -> MasterKey:
        try:
            return load_master_key(self.config)
        except KeystoreError as exc:
            raise OutputError(f"{exc} (run `certplane ca init` to create one)") from None

    async def _require_schema(self, db: Database) -> None:
        if await current_revision(db.engine) != head_revision():
            raise OutputError("the database schema is not current: run `certplane db upgrade`")

    def _out(self, human: str, data: Any) -> Any:
        return data if self.json else human

    async def db_upgrade(self) -> Any:
        _ensure_data_dir(self.config)
        db = Database(self.config.database.url)
        try:
            await upgrade(db.engine)
            revision = await current_revision(db.engine)
        finally:
            await db.dispose()
        return self._out(f"database schema at revision {revision}", {"revision": revision})

    async def ca_init(self) -> Any:
        _ensure_data_dir(self.config)
        created_key = self._ensure_master_key()
        async with self._provisioner() as prov:
            root = await prov.init_platform_ca()
        root_path = self.config.data_path("root.pem")
        write_file_atomically(root_path, root.public_bytes(serialization.Encoding.PEM), mode=0o644)
        data = {
            "root_subject": root.subject.rfc4514_string(),
            "root_certificate": str(root_path),
            "master_key_created": created_key,
        }
        return self._out(
            f"platform root CA: {data['root_subject']}\nroot certificate: {root_path}", data
        )

    async def ca_list(self, slug: str) -> Any:
        async with self._provisioner() as prov:
            records = await prov.issuers(slug)
        rows = [_issuer_json(r) for r in records]
        lines = [
            f"{r['id']:<24} {r['status']:<8} {r['pattern']:<15} {r['algorithm']:<9} "
            f"{r['not_after'] or '-':<26} {r['keystore']:<7} {r['subject']}"
            for r in rows
        ]
        return self._out("\n".join(lines) or "no issuers", rows)

    async def ca_create(self, args: Any) -> Any:
        spec = self._spec(args)
        async with self._provisioner() as prov:
            record = await prov.create_issuer(args.tenant, spec)
        data = _issuer_json(record)
        return self._out(f"issuer {data['id']} active: {data['subject']}", data)

    async def ca_rotate(self, slug: str, issuer_id: str) -> Any:
        async with self._provisioner() as prov:
            record = await prov.rotate_issuer(slug, issuer_id)
        data = {**_issuer_json(record), "replaces": issuer_id}
        return self._out(
            f"issuer {data['id']} active; {issuer_id} retired (still signs CRLs and OCSP)", data
        )

    async def ca_export_csr(self, args: Any) -> Any:
        spec = self._spec(args)
        async with self._provisioner() as prov:
            record = await prov.export_issuer_csr(args.tenant, spec)
        assert record.csr_pem is not None
        if args.out:
            write_file_atomically(Path(args.out), record.csr_pem.encode(), mode=0o644)
        data = {**_issuer_json(record), "csr": record.csr_pem}
        where = f"CSR written to {args.out}" if args.out else record.csr_pem.rstrip()
        return self._out(f"issuer {record.id} pending\n{where}", data)

    async def ca_import(self, args: Any) -> Any:
        texts = {name: _read_text(getattr(args, name)) for name in ("cert", "root", "chain")}
        async with self._provisioner() as prov:
            record = await prov.import_issuer_certificate(
                args.tenant,
                args.issuer,
                certificate_pem=texts["cert"],
                root_pem=texts["root"],
                chain_pem=texts["chain"],
                replaces=args.replaces,
            )
        data = _issuer_json(record)
        return self._out(f"issuer {record.id} active: {data['subject']}", data)

    async def ca_add_chain(self, slug: str, issuer_id: str, chain_path: str) -> Any:
        chain = _read_text(chain_path)
        async with self._provisioner() as prov:
            record = await prov.add_alternate_chain(slug, issuer_id, chain)
        data = _issuer_json(record)
        return self._out(
            f"issuer {record.id} offers {data['alternate_chains']} alternate chain(s)", data
        )

    async def ca_ocsp_responder(self, slug: str, issuer_id: str, days: int | None) -> Any:
        async with self._provisioner() as prov:
            record = await prov.set_ocsp_responder(slug, issuer_id, validity_days=days)
        data = _issuer_json(record)
        state = f"until {data['ocsp_responder_until']}" if days else "removed"
        return self._out(f"issuer {record.id}: delegated OCSP responder {state}", data)

    async def tenant_set(
        self,
        slug: str,
        ocsp: str | None,
        ca_issuers: str | None,
        limits: list[str],
        tier: str | None = None,
    ) -> Any:
        changes = dict(_limit_change(item) for item in limits)
        async with self._provisioner() as prov:
            if tier is not None:  # first: an unknown tier changes nothing
                await prov.set_tenant_tier(slug, "" if tier == "default" else tier)
            tenant = await prov.set_tenant_aia(
                slug,
                ocsp=None if ocsp is None else ocsp == "on",
                ca_issuers=None if ca_issuers is None else ca_issuers == "on",
            )
            if changes:
                tenant = await prov.set_tenant_limits(slug, changes)
        data = tenant_json(tenant, self.config.server.base_url)
        overrides = ", ".join(f"{k}={v or 'off'}" for k, v in tenant.limit_overrides.items())
        return self._out(
            f"tenant {slug}: AIA OCSP {_on(tenant.aia_ocsp)}, "
            f"caIssuers {_on(tenant.aia_ca_issuers)} (for new certificates); "
            f"tier: {tenant.tier or 'none'}; limit overrides: {overrides or 'none'}",
            data,
        )

    def _spec(self, args: Any) -> IssuerSpec:
        try:
            algorithm = KeyAlgorithm(args.algorithm or self.config.ca.key_algorithm)
        except ValueError:
            raise OutputError(f"unknown key algorithm {args.algorithm!r}") from None
        dedicated = getattr(args, "dedicated_root", False)
        pattern = HierarchyPattern.DEDICATED_ROOT if dedicated else HierarchyPattern.PLATFORM_ROOT
        return IssuerSpec(
            algorithm,
            pattern,
            key_token=args.hsm_token,
            permitted_dns_names=tuple(getattr(args, "permit_dns", ())),
            permitted_ip_networks=tuple(getattr(args, "permit_ip", ())),
        )

    def _ensure_master_key(self) -> bool:
        if self.config.keystore.master_key_env:
            return False
        path = self.config.data_path(self.config.keystore.master_key_file)
        if path.exists():
            return False
        MasterKey.generate().write_master_key_file(path)
        return True

    async def tenant_create(self, args: Any) -> Any:
        slug = args.slug
        async with self._provisioner() as prov:
            tenant = await prov.create_tenant(
                slug,
                args.name or slug[:MAX_DISPLAY_NAME],
                eab_required=not args.no_eab,
                spec=self._spec(args),
            )
        data = tenant_json(tenant, self.config.server.base_url)
        return self._out(f"tenant {slug} created\ndirectory: {data['directory']}", data)

    async def tenant_list(self) -> Any:
        async with self._provisioner() as prov:
            tenants = await prov.tenants()
        rows = [tenant_json(t, self.config.server.base_url) for t in tenants]
        lines = [f"{r['slug']:<24} {r['status']:<10} {r['directory']}" for r in rows]
        return self._out("\n".join(lines) or "no tenants", rows)

    async def tenant_show(self, slug: str) -> Any:
        async with self._provisioner() as prov:
            tenant = await prov.tenant(slug)
        data = tenant_json(tenant, self.config.server.base_url)
        return self._out("\n".join(f"{k}: {v}" for k, v in data.items()), data)

    async def tenant_status(self, slug: str, status: str) -> Any:
        async with self._provisioner() as prov:
            tenant = await prov.set_tenant_status(slug, TenantStatus(status))
        return self._out(
            f"tenant {slug} is {tenant.status.value}",
            tenant_json(tenant, self.config.server.base_url),
        )

    async def eab_create(self, slug: str, label: str) -> Any:
        async with self._provisioner() as prov:
            key = await prov.create_eab(slug, label)
        data = {"tenant": slug, "kid": key.kid, "hmac_key": key.hmac_key}
        human = f"kid: {key.kid}\nhmac key: {key.hmac_key}\n(the HMAC key is shown only now)"
        return self._out(human, data)

    async def eab_list(self, slug: str) -> Any:
        async with self._provisioner() as prov:
            keys = await prov.list_eab(slug)
        rows = [eab_json(k) for k in keys]
        lines = [f"{r['kid']:<24} {r['status']:<8} {r['label']}" for r in rows]
        return self._out("\n".join(lines) or "no EAB keys", rows)

    async def eab_revoke(self, slug: str, kid: str) -> Any:
        async with self._provisioner() as prov:
            await prov.revoke_eab(slug, kid)
        return self._out(
            f"EAB key {kid} revoked", {"tenant": slug, "kid": kid, "status": "revoked"}
        )

    async def serve(self) -> None:
        db = Database(self.config.database.url)
        try:
            await self._require_schema(db)
        finally:
            await db.dispose()
        self._master_key()
        await serve_forever(self.config)

    async def demo(self, *, serve: bool) -> Any:
        """Everything ``make run`` promises: data dir, CA, tenant, EAB key, TLS, then serve."""
        await self.db_upgrade()
        await self.ca_init()
        async with self._provisioner() as prov:
            if DEMO_TENANT not in {t.slug for t in await prov.tenants()}:
                await prov.create_tenant(DEMO_TENANT, "Demo", eab_required=True)
            eab = await prov.create_eab(DEMO_TENANT, "make run")
            chain, key = await prov.server_tls_certificate(["localhost"], ["127.0.0.1", "::1"])
        self._write_tls(chain, key)
        summary = demo_summary(self.config, eab.kid, eab.hmac_key)
        print(summary if not self.json else "", flush=True)
        if serve:
            await serve_forever(self.config)
        return None

    def _write_tls(self, chain: str, key: bytes) -> None:
        write_file_atomically(self.config.data_path(self.config.server.tls_key_file), key)
        write_file_atomically(
            self.config.data_path(self.config.server.tls_cert_file), chain.encode(), mode=0o644
        )


def _ensure_data_dir(config: Config) -> None:
    Path(config.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)


def demo_summary(config: Config, kid: str, hmac_key: str) -> str:
    directory = f"{config.server.base_url}/acme/{DEMO_TENANT}/directory"
    root = config.data_path("root.pem").resolve()
    work = config.data_path("certbot").resolve()
    certbot = _certbot_command()
    port = config.validation.http01_port
    port_flag = "" if port == 80 else f" --http-01-port {port}"
    return "\n".join(
        [
            "certplane demo",
            f"  directory URL : {directory}",
            f"  EAB kid       : {kid}",
            f"  EAB HMAC key  : {hmac_key}",
            f"  root CA       : {root}",
            "  validation    : loopback and .localhost names allowed (demo configuration only)",
            "",
            f"Get a certificate (certbot listens on port {port} for http-01):",
            f"  REQUESTS_CA_BUNDLE={root} {certbot} certonly --server {directory} \\",
            f"    --eab-kid={kid} --eab-hmac-key={hmac_key} \\",
            f"    --standalone{port_flag} -d demo.localhost --agree-tos -m admin@example.com -n \\",
            f"    --config-dir {work}/config --work-dir {work}/work --logs-dir {work}/logs",
            "",
        ]
    )


def _certbot_command() -> str:
    """certbot installed beside certplane (``make run`` installs it), else the one on PATH."""
    beside = Path(sys.executable).parent / "certbot"
    return str(beside) if beside.exists() else "certbot"


def tls_context(config: Config) -> ssl.SSLContext | None:
    if not config.server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(
        config.data_path(config.server.tls_cert_file), config.data_path(config.server.tls_key_file)
    )
    return context


# Signing with HSM (and RSA) keys runs in worker threads while the event loop keeps the GIL
# busy; at CPython's default 5 ms switch interval each hand-back of the GIL to a thread that
# finished a PKCS#11 call can wait that long, which bench/hsm.py measured as ~40 % less
# issuance throughput. A shorter interval keeps thread hops cheap.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


async def serve_forever(config: Config) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.server.listen_host,
        config.server.listen_port,
        ssl_context=tls_context(config),
    )
    await site.start()
    print(f"serving ACME on {config.server.base_url}", flush=True)
    api_runner = await _serve_api(config, app)
    try:
        await asyncio.Event().wait()
    finally:
        if api_runner is not None:
            await api_runner.cleanup()
        await runner.cleanup()


async def _serve_api(config: Config, app: web.Application) -> web.AppRunner | None:
    """The management API on its own listener (unless off or sharing the ACME one)."""
    api = config.api
    if not api.enabled:
        return None
    if api.share_acme_listener:
        print(f"serving the management API on {config.server.base_url}/api/v1", flush=True)
        return None
    runner = web.AppRunner(api_listener_app(app), access_log=None)
    await runner.setup()
    context = tls_context(config)  # the ACME listener's certificate, when it has one
    await web.TCPSite(runner, api.listen_host, api.listen_port, ssl_context=context).start()
    scheme = "https" if context is not None else "http"
    print(f"serving the management API on {scheme}://{api.listen_host}:{api.listen_port}/api/v1")
    return runner
