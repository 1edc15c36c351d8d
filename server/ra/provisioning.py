"""Control-plane use cases: the platform CA, tenants and their issuers, EAB keys.

The platform root only signs intermediates: each tenant's issuing CA, and the platform's own
``services`` intermediate that issues the server's TLS certificate.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import re
import secrets
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.ca.errors import IssuanceRefused
from certplane.ca.hierarchy import (
    check_alternate_chain,
    check_imported_ca,
    create_ca_csr,
    create_intermediate,
    create_ocsp_responder_certificate,
    create_root,
    create_tls_server_certificate,
)
from certplane.ca.keys.api import (
    KeyAlgorithm,
    KeyStore,
    SigningKey,
    key_algorithm,
    platform_binding,
    ref_scheme,
    tenant_binding,
)
from certplane.ca.keys.envelope import MasterKey, seal
from certplane.ca.keys.pkcs11_uri import parse_pkcs11_uri
from certplane.ca.keys.software import generate_private_key
from certplane.server.clock import Clock
from certplane.server.config import CaConfig, ConfigError
from certplane.server.model import (
    EabKey,
    EventType,
    HierarchyPattern,
    IssuerRecord,
    IssuerStatus,
    Tenant,
    TenantStatus,
)
from certplane.server.ra.accounts import eab_context
from certplane.server.ra.limits import LIMIT_NAMES, check_override
from certplane.server.storage.scope import TenantScope, new_id
from certplane.server.storage.uow import ProvisioningTx, TenantTx, UnitOfWork

ROOT = "root"
SERVICES = "services"
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class ProvisioningError(Exception):
    """A control-plane request that cannot be carried out; the message is for the operator."""


class ProvisioningConflict(ProvisioningError):
    """The target exists already or is not in a state that allows the change."""


class ProvisioningNotFound(ProvisioningError):
    """The tenant (or its object) does not exist."""


@dataclass(frozen=True)
class NewEab:
    kid: str
    hmac_key: str  # base64url, shown once


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


MAX_DISPLAY_NAME = 32  # the CA common names built from it stay within X.520's 64 characters


def check_display_name(name: str) -> str:
    """A tenant's display name: it becomes part of its CA certificates' common names."""
    if not 1 <= len(name) <= MAX_DISPLAY_NAME or not name.isprintable():
        raise ProvisioningError(
            f"tenant name: expected 1-{MAX_DISPLAY_NAME} printable characters "
            "(it is part of the tenant CA's common name)"
        )
    return name


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise ProvisioningError(
            f"tenant slug {slug!r}: expected 1-63 lowercase letters, digits and inner hyphens"
        )
    return slug


class Provisioner:
    def __init__(
        self,
        uow: UnitOfWork,
        keystore: KeyStore,
        master: MasterKey,
        ca: CaConfig,
        clock: Clock,
        *,
        tiers: Collection[str] = (),
    ) -> None:
        self._uow = uow
        self._keystore = keystore
        self._master = master
        self._ca = ca
        self._clock = clock
        self._tiers = frozenset(tiers)  # the names of [limits.tiers.*]

    async def init_platform_ca(self) -> x509.Certificate:
        """Create the platform root and services intermediate once; later calls return the root."""
        async with self._uow.platform() as platform:
            existing = await platform.platform_ca(ROOT)
            if existing is not None:
                return x509.load_pem_x509_certificate(existing["certificate_pem"].encode())
            now = self._clock.now()
            root_ref = self._keystore.generate(KeyAlgorithm.EC_P384, binding=platform_binding(ROOT))
            root_key = self._keystore.load(root_ref.ref, binding=platform_binding(ROOT))
            root = create_root(
                root_key,
                f"{self._ca.organization} Root CA",
                self._ca.organization,
                timedelta(days=self._ca.root_validity_days),
                now=now,
            )
            await platform.add_platform_ca(ROOT, _pem(root), root_ref.ref, now)
            services_ref = self._keystore.generate(
                KeyAlgorithm.EC_P256, binding=platform_binding(SERVICES)
            )
            services = create_intermediate(
                root,
                root_key,
                services_ref.public_key,
                f"{self._ca.organization} Services CA",
                self._ca.organization,
                timedelta(days=self._ca.intermediate_validity_days),
                now=now,
            )
            await platform.add_platform_ca(SERVICES, _pem(services), services_ref.ref, now)
            return root

    async def root_certificate(self) -> x509.Certificate:
        async with self._uow.platform(write=False) as platform:
            row = await platform.platform_ca(ROOT)
        if row is None:
            raise ProvisioningError("the platform CA does not exist: run `certplane ca init`")
        return x509.load_pem_x509_certificate(row["certificate_pem"].encode())

    async def _platform_signer(self, role: str) -> tuple[x509.Certificate, SigningKey]:
        async with self._uow.platform(write=False) as platform:
            row = await platform.platform_ca(role)
        if row is None:
            raise ProvisioningError("the platform CA does not exist: run `certplane ca init`")
        cert = x509.load_pem_x509_certificate(row["certificate_pem"].encode())
        return cert, self._keystore.load(row["key_ref"], binding=platform_binding(role))

    async def create_tenant(
        self,
        slug: str,
        display_name: str,
        *,
        eab_required: bool = True,
        key_token: str | None = None,
        spec: IssuerSpec | None = None,
        actor: str = "operator",
    ) -> Tenant:
        """A tenant with its own issuing CA, in one transaction.

        By default the platform root signs the tenant's intermediate; ``spec`` can ask for a
        dedicated tenant root, another key algorithm or name constraints. Keys are generated in
        the keystore for new keys: with PKCS#11, in the shared token (a per-tenant key object)
        or in ``key_token``, a token dedicated to the tenant.
        """
        check_slug(slug)
        check_display_name(display_name)
        spec = spec or IssuerSpec(KeyAlgorithm(self._ca.key_algorithm))
        if key_token is not None:
            spec = dataclasses.replace(spec, key_token=key_token)
        async with self._uow.provisioning() as ptx:
            if await ptx.platform.tenant_by_slug(slug) is not None:
                raise ProvisioningConflict(f"tenant {slug!r} already exists")
            now = self._clock.now()
            tenant = await ptx.platform.create_tenant(
                slug, display_name, eab_required=eab_required, now=now
            )
            tx = ptx.tenant(TenantScope(tenant.id, tenant.slug))
            await tx.events.append(
                EventType.TENANT_CREATED,
                object_type="tenant",
                object_id=tenant.id,
                actor=actor,
                now=now,
                slug=slug,
            )
            await self._new_issuer(tx, tenant, spec)
        return tenant

    async def _new_issuer(self, tx: TenantTx, tenant: Tenant, spec: IssuerSpec) -> IssuerRecord:
        """Generate the key and certify it per ``spec.pattern``; the new issuer is active."""
        binding = tenant_binding(tenant.id)
        now = self._clock.now()
        stored = self._keystore.generate(spec.algorithm, binding=binding, placement=spec.key_token)
        signer, signer_key, root_pem = await self._intermediate_signer(tx, tenant, spec)
        intermediate = create_intermediate(
            signer,
            signer_key,
            stored.public_key,
            f"{tenant.display_name} Issuing CA {spec.algorithm.value} {now:%Y%m%d}",
            self._ca.organization,
            timedelta(days=self._ca.intermediate_validity_days),
            permitted_dns_names=spec.permitted_dns_names,
            permitted_ip_networks=[ipaddress.ip_network(n) for n in spec.permitted_ip_networks],
            now=now,
        )
        return await self._record_issuer(
            tx,
            name=f"{tenant.slug}-{spec.algorithm.value}-{now:%Y%m%d%H%M%S}",
            certificate=intermediate,
            key_ref=stored.ref,
            pattern=spec.pattern,
            root_pem=root_pem,
        )

    async def _intermediate_signer(
        self, tx: TenantTx, tenant: Tenant, spec: IssuerSpec
    ) -> tuple[x509.Certificate, SigningKey, str]:
        """Who signs a new intermediate: the platform root or the tenant's own root (made on
        first use, in the tenant's keystore place). Also the root PEM to record ("" = platform)."""
        if spec.pattern is HierarchyPattern.PLATFORM_ROOT:
            root, root_key = await self._platform_signer(ROOT)
            return root, root_key, ""
        if spec.pattern is not HierarchyPattern.DEDICATED_ROOT:
            raise ProvisioningError("a customer-owned CA is created with export-csr and import")
        binding = tenant_binding(tenant.id)
        existing = [r for r in await tx.issuers.list() if r.status == IssuerStatus.ROOT.value]
        if existing:
            record = existing[-1]
            key = self._keystore.load(record.key_ref, binding=binding)
            return _cert(record.certificate_pem), key, record.certificate_pem
        stored = self._keystore.generate(
            KeyAlgorithm.EC_P384, binding=binding, placement=spec.key_token
        )
        key = self._keystore.load(stored.ref, binding=binding)
        root = create_root(
            key,
            f"{tenant.display_name} Root CA",
            self._ca.organization,
            timedelta(days=self._ca.root_validity_days),
            now=self._clock.now(),
        )
        await self._record_issuer(
            tx,
            name=f"{tenant.slug}-root",
            certificate=root,
            key_ref=stored.ref,
            pattern=HierarchyPattern.DEDICATED_ROOT,
            status=IssuerStatus.ROOT,
        )
        return root, key, _pem(root)

    async def _record_issuer(
        self,
        tx: TenantTx,
        *,
        name: str,
        certificate: x509.Certificate | None,
        key_ref: str,
        pattern: HierarchyPattern,
        root_pem: str = "",
        status: IssuerStatus = IssuerStatus.ACTIVE,
        csr_pem: str | None = None,
    ) -> IssuerRecord:
        issuer_id = new_id()
        now = self._clock.now()
        await tx.issuers.create(
            issuer_id=issuer_id,
            name=name,
            certificate_pem=_pem(certificate) if certificate is not None else "",
            chain_pem="",
            key_ref=key_ref,
            now=now,
            status=status,
            pattern=pattern,
            root_pem=root_pem,
            csr_pem=csr_pem,
        )
        subject = certificate.subject.rfc4514_string() if certificate is not None else ""
        await tx.events.append(
            EventType.ISSUER_CREATED,
            object_type="issuer",
            object_id=issuer_id,
            actor="operator",
            now=now,
            subject=subject,
            status=status.value,
            pattern=pattern.value,
        )
        record = await tx.issuers.get(issuer_id)
        assert record is not None
        return record

    # -- tenant CAs: list, create, rotate, customer-owned CSR and import ----------------------

    async def issuers(self, slug: str) -> list[IssuerRecord]:
        async with self._tenant_tx(slug, write=False) as (_tenant, tx):
            return await tx.issuers.list()

    async def create_issuer(self, slug: str, spec: IssuerSpec) -> IssuerRecord:
        """Another active issuer for the tenant (for example an RSA one beside the ECDSA one)."""
        async with self._tenant_tx(slug) as (tenant, tx):
            return await self._new_issuer(tx, tenant, spec)

    async def rotate_issuer(self, slug: str, issuer_id: str) -> IssuerRecord:
        """A new key and intermediate take over from ``issuer_id``, which is retired: it signs
        no new certificates but keeps signing its CRL and OCSP responses."""
        async with self._tenant_tx(slug) as (tenant, tx):
            old = await tx.issuers.get(issuer_id)
            if old is None or old.status != IssuerStatus.ACTIVE.value:
                raise ProvisioningError(f"issuer {issuer_id} is not an active issuer of {slug}")
            if old.pattern == HierarchyPattern.CUSTOMER_ROOT.value:
                raise ProvisioningError(
                    "a customer-owned CA rotates by export-csr, then import --replaces"
                )
            algorithm = key_algorithm(_cert(old.certificate_pem).public_key())  # type: ignore[arg-type]
            spec = IssuerSpec(
                algorithm,
                HierarchyPattern(old.pattern),
                key_token=_token_of(old.key_ref),
                **_constraints_of(_cert(old.certificate_pem)),
            )
            new = await self._new_issuer(tx, tenant, spec)
            await self._retire(tx, old.id, replaced_by=new.id)
            return new

    async def export_issuer_csr(self, slug: str, spec: IssuerSpec) -> IssuerRecord:
        """A customer-owned CA: the key is generated here (in the HSM with PKCS#11) and only a
        CSR leaves; the issuer stays pending until `import_issuer_certificate`."""
        tenant = await self.tenant(slug)
        binding = tenant_binding(tenant.id)
        stored = self._keystore.generate(spec.algorithm, binding=binding, placement=spec.key_token)
        key = self._keystore.load(stored.ref, binding=binding)
        csr = create_ca_csr(key, f"{tenant.display_name} Issuing CA", self._ca.organization)
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            return await self._record_issuer(
                tx,
                name=f"{tenant.slug}-customer-{spec.algorithm.value}",
                certificate=None,
                key_ref=stored.ref,
                pattern=HierarchyPattern.CUSTOMER_ROOT,
                status=IssuerStatus.PENDING,
                csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            )

    async def import_issuer_certificate(
        self,
        slug: str,
        issuer_id: str,
        *,
        certificate_pem: str,
        root_pem: str,
        chain_pem: str = "",
        replaces: str | None = None,
    ) -> IssuerRecord:
        """Activate a pending customer-owned CA with the certificate the tenant's CA signed,
        after checking it certifies our key, is a CA, and chains to the uploaded root."""
        async with self._tenant_tx(slug) as (tenant, tx):
            pending = await tx.issuers.get(issuer_id)
            if pending is None or pending.status != IssuerStatus.PENDING.value:
                raise ProvisioningError(f"issuer {issuer_id} of {slug} is not waiting for import")
            key = self._keystore.load(pending.key_ref, binding=tenant_binding(tenant.id))
            try:
                certificate, chain, root = check_imported_ca(
                    certificate_pem, chain_pem, root_pem, key.public_key(), self._clock.now()
                )
            except ValueError as exc:
                raise ProvisioningError(f"certificate refused: {exc}") from None
            await tx.issuers.activate(
                issuer_id,
                certificate_pem=_pem(certificate),
                chain_pem="".join(_pem(c) for c in chain),
                root_pem=_pem(root),
            )
            if replaces is not None:
                await self._retire(tx, replaces, replaced_by=issuer_id)
            record = await tx.issuers.get(issuer_id)
            assert record is not None
            return record

    async def add_alternate_chain(self, slug: str, issuer_id: str, chain_pem: str) -> IssuerRecord:
        """Offer another chain above an issuer (RFC 8555 §7.4.2 rel="alternate"), for example
        with its issuer cross-signed by another root, after checking it links up."""
        async with self._tenant_tx(slug) as (_tenant, tx):
            record = await tx.issuers.get(issuer_id)
            if record is None or not record.certificate_pem:
                raise ProvisioningError(f"issuer {issuer_id} of {slug} has no certificate")
            try:
                chain = check_alternate_chain(
                    _cert(record.certificate_pem), chain_pem, self._clock.now()
                )
            except ValueError as exc:
                raise ProvisioningError(f"chain refused: {exc}") from None
            pem = "".join(_pem(c) for c in chain)
            if pem in record.alternate_chains or pem == record.chain_pem:
                raise ProvisioningError("this chain is already offered")
            await tx.issuers.set_alternate_chains(issuer_id, [*record.alternate_chains, pem])
            updated = await tx.issuers.get(issuer_id)
            assert updated is not None
            return updated

    async def set_ocsp_responder(
        self, slug: str, issuer_id: str, *, validity_days: int | None
    ) -> IssuerRecord:
        """Give an issuer a delegated OCSP responder (RFC 6960 §4.2.2.2), a fresh key beside the
        issuer's key and a short-lived certificate it signs; None removes it (the issuer key
        signs responses again). Run again before it expires to renew."""
        async with self._tenant_tx(slug) as (tenant, tx):
            record = await tx.issuers.get(issuer_id)
            if record is None or not record.certificate_pem:
                raise ProvisioningError(f"issuer {issuer_id} of {slug} has no certificate")
            if validity_days is None:
                await tx.issuers.set_ocsp_responder(issuer_id, certificate_pem=None, key_ref=None)
            else:
                cert_pem, key_ref = self._new_ocsp_responder(tenant, record, validity_days)
                await tx.issuers.set_ocsp_responder(
                    issuer_id, certificate_pem=cert_pem, key_ref=key_ref
                )
            updated = await tx.issuers.get(issuer_id)
            assert updated is not None
            return updated

    def _new_ocsp_responder(
        self, tenant: Tenant, record: IssuerRecord, validity_days: int
    ) -> tuple[str, str]:
        if not 1 <= validity_days <= 90:
            raise ProvisioningError("an OCSP responder certificate lives 1 to 90 days")
        binding = tenant_binding(tenant.id)
        issuer = _cert(record.certificate_pem)
        issuer_key = self._keystore.load(record.key_ref, binding=binding)
        stored = self._keystore.generate(
            KeyAlgorithm.EC_P256, binding=binding, placement=_token_of(record.key_ref)
        )
        try:
            cert = create_ocsp_responder_certificate(
                issuer, issuer_key, stored.public_key, timedelta(days=validity_days),
                now=self._clock.now(),
            )  # fmt: skip
        except IssuanceRefused as exc:
            raise ProvisioningError(f"OCSP responder refused: {exc.detail}") from None
        return _pem(cert), stored.ref

    async def set_tenant_aia(
        self, slug: str, *, ocsp: bool | None = None, ca_issuers: bool | None = None
    ) -> Tenant:
        """What the tenant's new leaves carry in AIA (RFC 5280 §4.2.2.1)."""
        tenant = await self.tenant(slug)
        async with self._uow.provisioning() as ptx:
            new_ocsp = tenant.aia_ocsp if ocsp is None else ocsp
            new_ca_issuers = tenant.aia_ca_issuers if ca_issuers is None else ca_issuers
            await ptx.platform.set_tenant_aia(tenant.id, ocsp=new_ocsp, ca_issuers=new_ca_issuers)
            await self._tenant_event(
                ptx,
                tenant,
                EventType.TENANT_UPDATED,
                aia_ocsp=new_ocsp,
                aia_ca_issuers=new_ca_issuers,
            )
        return await self.tenant(slug)

    async def set_tenant_limits(
        self, slug: str, changes: Mapping[str, str | None], *, actor: str = "operator"
    ) -> Tenant:
        """Override rate limits for one tenant: name -> "COUNT/PERIOD", "" (off for this
        tenant) or None (back to the configuration)."""
        return await self.set_tenant_limit_settings(slug, changes=changes, actor=actor)

    async def set_tenant_tier(self, slug: str, tier: str, *, actor: str = "operator") -> Tenant:
        """Put the tenant on a tier of ``[limits.tiers]`` ("": none, the configured limits);
        its own overrides still apply over the tier's limits."""
        return await self.set_tenant_limit_settings(slug, tier=tier, actor=actor)

    async def set_tenant_limit_settings(
        self,
        slug: str,
        *,
        tier: str | None = None,
        changes: Mapping[str, str | None] | None = None,
        actor: str = "operator",
    ) -> Tenant:
        """A tier and/or overrides, all checked before anything is written, in one
        transaction (a refused part changes nothing)."""
        if tier is not None:
            self._check_tier(tier)
        tenant = await self.tenant(slug)
        overrides = None if changes is None else _merged_overrides(tenant, changes)
        async with self._uow.provisioning() as ptx:
            if overrides is not None:
                await ptx.platform.set_tenant_limits(tenant.id, overrides)
                await self._tenant_event(
                    ptx, tenant, EventType.TENANT_UPDATED, actor=actor, limits=overrides
                )
            if tier is not None:
                await ptx.platform.set_tenant_tier(tenant.id, tier)
                await self._tenant_event(
                    ptx, tenant, EventType.TENANT_UPDATED, actor=actor, tier=tier
                )
        return await self.tenant(slug)

    def _check_tier(self, tier: str) -> None:
        if tier and tier not in self._tiers:
            known = ", ".join(sorted(self._tiers)) or "none configured"
            raise ProvisioningError(f"unknown tier {tier!r} (known: {known})")

    async def _retire(self, tx: TenantTx, issuer_id: str, *, replaced_by: str) -> None:
        if not await tx.issuers.retire(issuer_id, self._clock.now()):
            raise ProvisioningError(f"issuer {issuer_id} is not active")
        await tx.events.append(
            EventType.ISSUER_RETIRED,
            object_type="issuer",
            object_id=issuer_id,
            actor="operator",
            now=self._clock.now(),
            replaced_by=replaced_by,
        )

    @contextlib.asynccontextmanager
    async def _tenant_tx(
        self, slug: str, *, write: bool = True
    ) -> AsyncIterator[tuple[Tenant, TenantTx]]:
        """The tenant named ``slug`` and a unit of work scoped to it."""
        tenant = await self.tenant(slug)
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug), write=write) as tx:
            yield tenant, tx

    async def tenant(self, slug: str) -> Tenant:
        async with self._uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(slug)
        if tenant is None:
            raise ProvisioningNotFound(f"tenant {slug!r} does not exist")
        return tenant

    async def tenants(self) -> list[Tenant]:
        async with self._uow.platform(write=False) as platform:
            return await platform.tenants()

    async def set_tenant_status(
        self, slug: str, status: TenantStatus, *, actor: str = "operator"
    ) -> Tenant:
        tenant = await self.tenant(slug)
        async with self._uow.provisioning() as ptx:
            await ptx.platform.set_tenant_status(tenant.id, status)
            await self._tenant_event(
                ptx, tenant, EventType.TENANT_STATUS_CHANGED, actor=actor, status=status.value
            )
        return await self.tenant(slug)

    async def _tenant_event(
        self,
        ptx: ProvisioningTx,
        tenant: Tenant,
        event: EventType,
        *,
        actor: str = "operator",
        **data: Any,
    ) -> None:
        """An operator's change to a tenant record, on the tenant's own event log."""
        await ptx.tenant(TenantScope(tenant.id, tenant.slug)).events.append(
            event,
            object_type="tenant",
            object_id=tenant.id,
            actor=actor,
            now=self._clock.now(),
            **data,
        )

    async def create_eab(self, slug: str, label: str = "", *, actor: str = "operator") -> NewEab:
        """A single-use EAB key; its HMAC key is sealed at rest and returned only here."""
        tenant = await self.tenant(slug)
        kid = new_id()  # never starts with '-', so it can be typed after `eab revoke`
        hmac_key = secrets.token_bytes(32)
        sealed = seal(self._master, hmac_key, context=eab_context(tenant.id, kid))
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            now = self._clock.now()
            await tx.eab.create(kid, label, sealed, now, created_by=actor)
            await tx.events.append(
                EventType.EAB_CREATED,
                object_type="eab",
                object_id=kid,
                actor=actor,
                now=now,
                label=label,
            )
        return NewEab(kid, _b64(hmac_key))

    async def list_eab(self, slug: str) -> list[EabKey]:
        async with self._tenant_tx(slug, write=False) as (_tenant, tx):
            return await tx.eab.list()

    async def revoke_eab(self, slug: str, kid: str, *, actor: str = "operator") -> None:
        async with self._tenant_tx(slug) as (_tenant, tx):
            now = self._clock.now()
            if not await tx.eab.revoke(kid, now):
                key = await tx.eab.get(kid)
                if key is None:
                    raise ProvisioningNotFound(f"EAB key {kid} does not exist")
                raise ProvisioningConflict(
                    f"EAB key {kid} is {key.status.value}: only unbound keys can be revoked"
                )
            await tx.events.append(
                EventType.EAB_REVOKED, object_type="eab", object_id=kid, actor=actor, now=now
            )

    async def server_tls_certificate(
        self, dns_names: list[str], ip_addresses: list[str]
    ) -> tuple[str, bytes]:
        """A TLS certificate chain (PEM) and PKCS#8 key (PEM) for the server's own listener."""
        issuer, issuer_key = await self._platform_signer(SERVICES)
        key = generate_private_key(KeyAlgorithm.EC_P256)
        cert = create_tls_server_certificate(
            issuer,
            issuer_key,
            key.public_key(),
            dns_names,
            [ipaddress.ip_address(ip) for ip in ip_addresses],
            timedelta(days=90),
            now=self._clock.now(),
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _pem(cert) + _pem(issuer), key_pem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class IssuerSpec:
    """What a new tenant issuer looks like."""

    algorithm: KeyAlgorithm
    pattern: HierarchyPattern = HierarchyPattern.PLATFORM_ROOT
    # A PKCS#11 token dedicated to the tenant (None: the keystore's default place).
    key_token: str | None = None
    # RFC 5280 §4.2.1.10 name constraints on the intermediate (empty: unconstrained).
    permitted_dns_names: tuple[str, ...] = ()
    permitted_ip_networks: tuple[str, ...] = ()


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def _token_of(key_ref: str) -> str | None:
    """The token of a pkcs11 ref, so a rotated key stays where the old one was."""
    if ref_scheme(key_ref) != "pkcs11":
        return None
    return parse_pkcs11_uri(key_ref).token


def _constraints_of(certificate: x509.Certificate) -> dict[str, tuple[str, ...]]:
    """The permitted subtrees of an intermediate, to carry over to its successor."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return {}
    permitted = constraints.permitted_subtrees or []
    return {
        "permitted_dns_names": tuple(n.value for n in permitted if isinstance(n, x509.DNSName)),
        "permitted_ip_networks": tuple(
            str(n.value) for n in permitted if isinstance(n, x509.IPAddress)
        ),
    }


def _merged_overrides(tenant: Tenant, changes: Mapping[str, str | None]) -> dict[str, str]:
    """The tenant's overrides after ``changes`` (None removes one), each checked."""
    overrides = dict(tenant.limit_overrides)
    for name, rate in changes.items():
        if name not in LIMIT_NAMES.values():
            known = ", ".join(sorted(LIMIT_NAMES.values()))
            raise ProvisioningError(f"unknown limit {name!r} (known: {known})")
        if rate is None:
            overrides.pop(name, None)
            continue
        try:
            check_override(name, rate)
        except ConfigError as exc:
            raise ProvisioningError(str(exc)) from None
        overrides[name] = rate
    return overrides
