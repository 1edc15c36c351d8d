"""CRLs per issuer, served at the distribution point every leaf carries (RFC 5280 §5).

A CRL is built on demand and cached until a revocation changes what it must list or it is an
hour old; ``nextUpdate`` is a day after ``thisUpdate``. CRL numbers (§5.2.3) come from a
per-issuer counter in the database, so they increase across processes and restarts.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certplane.ca.crl import RevokedEntry, build_crl
from certplane.ca.keys.api import ref_scheme
from certplane.ca.keys.errors import KeystoreUnavailable
from certplane.server.errors import AcmeProblem, ProblemType, not_found
from certplane.server.model import IssuerRecord, IssuerStatus
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuers import CrlUrl, IssuerRegistry
from certplane.server.storage.scope import TenantScope

REGENERATE_AFTER = timedelta(hours=1)
_PUBLISHING = frozenset({IssuerStatus.ACTIVE.value, IssuerStatus.RETIRED.value})
VALIDITY = timedelta(days=1)


@dataclass(frozen=True)
class CrlDocument:
    der: bytes
    this_update: datetime
    next_update: datetime
    fingerprint: tuple[tuple[str, datetime, int], ...]


class CrlService:
    def __init__(self, deps: RADeps, issuers: IssuerRegistry, crl_url: CrlUrl) -> None:
        self._deps = deps
        self._issuers = issuers
        self._crl_url = crl_url
        self._cache: dict[tuple[str, str], CrlDocument] = {}

    async def issuer_certificate(self, scope: TenantScope, issuer_id: str) -> bytes:
        """The DER certificate of one of the tenant's issuers (404 if none or pending)."""
        async with self._deps.uow.begin(scope, write=False) as tx:
            record = await tx.issuers.get(issuer_id)
        if record is None or not record.certificate_pem:
            raise not_found("issuer certificate")
        cert = x509.load_pem_x509_certificate(record.certificate_pem.encode("ascii"))
        return cert.public_bytes(Encoding.DER)

    async def crl(self, scope: TenantScope, issuer_id: str) -> CrlDocument:
        async with self._deps.uow.begin(scope, write=False) as tx:
            record = await tx.issuers.get(issuer_id)
            if record is None or record.status not in _PUBLISHING:
                raise not_found("CRL")  # a pending CA or a tenant root publishes none here
            revoked = tuple(await tx.certificates.revoked_by_issuer(issuer_id))
        now = self._deps.clock.now()
        key = (scope.tenant_id, issuer_id)
        cached = self._cache.get(key)
        if cached and cached.fingerprint == revoked and now - cached.this_update < REGENERATE_AFTER:
            return cached
        this_update = now.replace(microsecond=0)
        number = await self._next_number(scope, issuer_id)
        build = functools.partial(self._build, scope, record, revoked, number, this_update)
        try:
            der = (
                build() if ref_scheme(record.key_ref) == "soft" else await asyncio.to_thread(build)
            )
        except KeystoreUnavailable:
            if cached is not None and now < cached.next_update:
                return cached  # still valid: relying parties are served, a new one follows
            raise AcmeProblem(
                ProblemType.SERVER_INTERNAL,
                "the CRL signer is unavailable; try again shortly",
                status=503,
                retry_after=30,
            ) from None
        document = CrlDocument(der, this_update, this_update + VALIDITY, revoked)
        self._cache[key] = document
        return document

    async def _next_number(self, scope: TenantScope, issuer_id: str) -> int:
        """Take the next CRL number from the issuer's counter in the database, so numbers
        increase across every process and restart; a number whose CRL is never signed is just
        a gap, which §5.2.3 allows."""
        async with self._deps.uow.begin(scope) as tx:
            number = await tx.issuers.next_crl_number(issuer_id)
        if number is None:
            raise not_found("CRL")
        return number

    def _build(
        self,
        scope: TenantScope,
        record: IssuerRecord,
        revoked: tuple[tuple[str, datetime, int], ...],
        number: int,
        this_update: datetime,
    ) -> bytes:
        """Sign one CRL (blocking: a token-held key signs in the token)."""
        cert, signing_key = self._issuers.signer(scope, record)
        crl = build_crl(
            cert,
            signing_key,
            [RevokedEntry(int(serial, 16), at, reason) for serial, at, reason in revoked],
            crl_number=number,
            this_update=this_update,
            next_update=this_update + VALIDITY,
            distribution_point=self._crl_url(scope, record.id),
        )
        return crl.public_bytes(Encoding.DER)
