"""Control-plane use cases: the platform CA, tenants and their issuers, EAB keys.

The platform root only signs intermediates: each tenant's issuing CA, and the platform's own
``services`` intermediate that issues the server's TLS certificate.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.ca.hierarchy import create_intermediate, create_root, create_tls_server_certificate
from certplane.ca.keys.api import (
    KeyAlgorithm,
    KeyStore,
    SigningKey,
    platform_binding,
    tenant_binding,
)
from certplane.ca.keys.envelope import MasterKey, seal
from certplane.ca.keys.software import generate_private_key
from certplane.server.clock import Clock
from certplane.server.config import CaConfig
from certplane.server.model import EabKey, EventType, Tenant, TenantStatus
from certplane.server.ra.accounts import eab_context
from certplane.server.storage.scope import TenantScope, new_id
from certplane.server.storage.uow import UnitOfWork

ROOT = "root"
SERVICES = "services"
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class ProvisioningError(Exception):
    """A control-plane request that cannot be carried out; the message is for the operator."""


@dataclass(frozen=True)
class NewEab:
    kid: str
    hmac_key: str  # base64url, shown once


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise ProvisioningError(
            f"tenant slug {slug!r}: expected 1-63 lowercase letters, digits and inner hyphens"
        )
    return slug


class Provisioner:
    def __init__(
        self, uow: UnitOfWork, keystore: KeyStore, master: MasterKey, ca: CaConfig, clock: Clock
    ) -> None:
        self._uow = uow
        self._keystore = keystore
        self._master = master
        self._ca = ca
        self._clock = clock

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
    ) -> Tenant:
        """A tenant with its own intermediate CA under the platform root, in one transaction.

        The intermediate's key is generated in the keystore for new keys: with PKCS#11, in the
        shared token (a per-tenant key object) or in ``key_token``, a token dedicated to it.
        """
        check_slug(slug)
        root, root_key = await self._platform_signer(ROOT)
        async with self._uow.provisioning() as ptx:
            if await ptx.platform.tenant_by_slug(slug) is not None:
                raise ProvisioningError(f"tenant {slug!r} already exists")
            now = self._clock.now()
            tenant = await ptx.platform.create_tenant(
                slug, display_name, eab_required=eab_required, now=now
            )
            scope = TenantScope(tenant.id, tenant.slug)
            stored = self._keystore.generate(
                KeyAlgorithm(self._ca.key_algorithm),
                binding=tenant_binding(tenant.id),
                placement=key_token,
            )
            intermediate = create_intermediate(
                root,
                root_key,
                stored.public_key,
                f"{display_name} Issuing CA",
                self._ca.organization,
                timedelta(days=self._ca.intermediate_validity_days),
                now=now,
            )
            tx = ptx.tenant(scope)
            issuer_id = new_id()
            await tx.issuers.create(
                issuer_id=issuer_id,
                name=f"{slug}-{self._ca.key_algorithm}",
                certificate_pem=_pem(intermediate),
                chain_pem="",
                key_ref=stored.ref,
                now=now,
            )
            await tx.events.append(
                EventType.TENANT_CREATED,
                object_type="tenant",
                object_id=tenant.id,
                actor="operator",
                now=now,
                slug=slug,
            )
            await tx.events.append(
                EventType.ISSUER_CREATED,
                object_type="issuer",
                object_id=issuer_id,
                actor="operator",
                now=now,
                subject=intermediate.subject.rfc4514_string(),
            )
        return tenant

    async def tenant(self, slug: str) -> Tenant:
        async with self._uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(slug)
        if tenant is None:
            raise ProvisioningError(f"tenant {slug!r} does not exist")
        return tenant

    async def tenants(self) -> list[Tenant]:
        async with self._uow.platform(write=False) as platform:
            return await platform.tenants()

    async def set_tenant_status(self, slug: str, status: TenantStatus) -> Tenant:
        tenant = await self.tenant(slug)
        async with self._uow.provisioning() as ptx:
            await ptx.platform.set_tenant_status(tenant.id, status)
            await ptx.tenant(TenantScope(tenant.id, tenant.slug)).events.append(
                EventType.TENANT_STATUS_CHANGED,
                object_type="tenant",
                object_id=tenant.id,
                actor="operator",
                now=self._clock.now(),
                status=status.value,
            )
        return await self.tenant(slug)

    async def create_eab(self, slug: str, label: str = "") -> NewEab:
        """A single-use EAB key; its HMAC key is sealed at rest and returned only here."""
        tenant = await self.tenant(slug)
        kid = _b64(secrets.token_bytes(16))
        hmac_key = secrets.token_bytes(32)
        sealed = seal(self._master, hmac_key, context=eab_context(tenant.id, kid))
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            now = self._clock.now()
            await tx.eab.create(kid, label, sealed, now)
            await tx.events.append(
                EventType.EAB_CREATED,
                object_type="eab",
                object_id=kid,
                actor="operator",
                now=now,
                label=label,
            )
        return NewEab(kid, _b64(hmac_key))

    async def list_eab(self, slug: str) -> list[EabKey]:
        tenant = await self.tenant(slug)
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            return await tx.eab.list()

    async def revoke_eab(self, slug: str, kid: str) -> None:
        tenant = await self.tenant(slug)
        async with self._uow.begin(TenantScope(tenant.id, tenant.slug)) as tx:
            now = self._clock.now()
            if not await tx.eab.revoke(kid, now):
                key = await tx.eab.get(kid)
                state = "does not exist" if key is None else f"is {key.status.value}"
                raise ProvisioningError(f"EAB key {kid} {state}: only unbound keys can be revoked")
            await tx.events.append(
                EventType.EAB_REVOKED, object_type="eab", object_id=kid, actor="operator", now=now
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
