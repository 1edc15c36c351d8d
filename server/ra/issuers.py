"""Which backend issues for a tenant: an explicit registry, filled from configuration (§6).

Only the local CA exists so far; an upstream ACME proxy registers here the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certplane.ca.api import IssuerBackend
from certplane.ca.keys.api import KeyStore, SigningKey, ref_scheme, tenant_binding
from certplane.ca.local import LocalIssuer
from certplane.ca.profiles import DEFAULT_PROFILES, Profile
from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import IssuerRecord
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

CrlUrl = Callable[[TenantScope, str], str]
Aia = tuple[bool, bool]  # (OCSP URL, caIssuers URL) in leaves


def load_pem_chain(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode("ascii")) if pem.strip() else []


class IssuerRegistry:
    """Builds (and caches) the backend of a tenant's active issuer."""

    def __init__(
        self,
        keystore: KeyStore,
        crl_url: CrlUrl,
        profiles: Mapping[str, Profile] | None = None,
        ocsp_url: CrlUrl | None = None,
        ca_issuers_url: CrlUrl | None = None,
    ) -> None:
        self._keystore = keystore
        self._crl_url = crl_url
        self._ocsp_url = ocsp_url
        self._ca_issuers_url = ca_issuers_url
        self._profiles = dict(profiles or DEFAULT_PROFILES)
        self._cache: dict[tuple[str, str, str, Aia], IssuerBackend] = {}

    async def for_key(self, tx: TenantTx, public_key: object) -> IssuerRecord:
        """The active issuer that signs a certificate for ``public_key`` (the CSR's key)."""
        active = await tx.issuers.active()
        if not active:
            raise AcmeProblem(ProblemType.SERVER_INTERNAL, "tenant has no active issuer")
        return choose_issuer(active, public_key)

    async def backend(
        self, scope: TenantScope, record: IssuerRecord, aia: Aia = (True, True)
    ) -> IssuerBackend:
        """The backend of ``record`` for ``scope``, built once per (tenant, issuer, key ref,
        AIA choice); ``aia`` is the tenant's (OCSP URL, caIssuers URL) in leaves.

        The key ref is part of the cache key: a ref changed in the database is loaded, and so
        checked against the tenant's binding, before anything is signed with it. Keys held
        outside the process (PKCS#11) are opened in a worker thread.
        """
        key = (scope.tenant_id, record.id, record.key_ref, aia)
        backend = self._cache.get(key)
        if backend is None:
            if ref_scheme(record.key_ref) == "soft":
                backend = self._build(scope, record, aia)
            else:
                backend = await asyncio.to_thread(self._build, scope, record, aia)
            self._cache[key] = backend
        return backend

    def load_key(self, scope: TenantScope, key_ref: str) -> SigningKey:
        """Another key of the tenant (a delegated OCSP responder's), for this tenant's binding."""
        return self._keystore.load(key_ref, binding=tenant_binding(scope.tenant_id))

    def signer(
        self, scope: TenantScope, record: IssuerRecord
    ) -> tuple[x509.Certificate, SigningKey]:
        """The issuer certificate and key, loaded for this tenant's binding."""
        key = self._keystore.load(record.key_ref, binding=tenant_binding(scope.tenant_id))
        return x509.load_pem_x509_certificate(record.certificate_pem.encode("ascii")), key

    def _build(self, scope: TenantScope, record: IssuerRecord, aia: Aia) -> IssuerBackend:
        # NOTE(tenancy): the key is loaded for this tenant's binding; a ref created for another
        # tenant fails here, at signing time, whatever the database says.
        signing_key = self._keystore.load(record.key_ref, binding=tenant_binding(scope.tenant_id))
        issuer_cert = x509.load_pem_x509_certificate(record.certificate_pem.encode("ascii"))
        return LocalIssuer(
            issuer_certificate=issuer_cert,
            chain=[issuer_cert, *load_pem_chain(record.chain_pem)],
            signing_key=signing_key,
            profiles=self._profiles,
            crl_url=self._crl_url(scope, record.id),
            ocsp_url=self._ocsp_url(scope, record.id) if self._ocsp_url and aia[0] else None,
            ca_issuers_url=(
                self._ca_issuers_url(scope, record.id) if self._ca_issuers_url and aia[1] else None
            ),
            tenant_id=scope.tenant_id,
            root=x509.load_pem_x509_certificate(record.root_pem.encode())
            if record.root_pem
            else None,
        )


def key_family(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec"
    return "rsa" if isinstance(public_key, rsa.RSAPublicKey) else "other"


def choose_issuer(active: Sequence[IssuerRecord], public_key: object) -> IssuerRecord:
    """Of the active issuers (newest first), the newest whose key is of the CSR key's family
    (an RSA subscriber key gets the RSA intermediate when the tenant has one), else the newest.
    """
    family = key_family(public_key)
    for record in active:
        issuer_key = x509.load_pem_x509_certificate(record.certificate_pem.encode()).public_key()
        if key_family(issuer_key) == family:
            return record
    return active[0]
