"""CRLs per issuer, served at the distribution point every leaf carries (RFC 5280 §5).

A CRL is built on demand and cached until a revocation changes what it must list or it is an
hour old; ``nextUpdate`` is a day after ``thisUpdate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding

from certplane.ca.crl import RevokedEntry, build_crl
from certplane.server.errors import not_found
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuers import CrlUrl, IssuerRegistry
from certplane.server.storage.scope import TenantScope

REGENERATE_AFTER = timedelta(hours=1)
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

    async def crl(self, scope: TenantScope, issuer_id: str) -> CrlDocument:
        async with self._deps.uow.begin(scope, write=False) as tx:
            record = await tx.issuers.get(issuer_id)
            if record is None:
                raise not_found("CRL")
            revoked = tuple(await tx.certificates.revoked_by_issuer(issuer_id))
        now = self._deps.clock.now()
        key = (scope.tenant_id, issuer_id)
        cached = self._cache.get(key)
        if cached and cached.fingerprint == revoked and now - cached.this_update < REGENERATE_AFTER:
            return cached
        cert, signing_key = self._issuers.signer(scope, record)
        this_update = now.replace(microsecond=0)
        crl = build_crl(
            cert,
            signing_key,
            [RevokedEntry(int(serial, 16), at, reason) for serial, at, reason in revoked],
            crl_number=int(this_update.timestamp()),
            this_update=this_update,
            next_update=this_update + VALIDITY,
            distribution_point=self._crl_url(scope, issuer_id),
        )
        document = CrlDocument(
            crl.public_bytes(Encoding.DER), this_update, this_update + VALIDITY, revoked
        )
        self._cache[key] = document
        return document
