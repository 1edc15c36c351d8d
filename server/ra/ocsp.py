"""OCSP per issuer (RFC 6960, RFC 5019 profile): the status of a tenant's certificates.

Each tenant issuer answers at ``/ocsp/{tenant}/{issuer}``. The certificate's state comes from the
tenant-scoped certificate table, so an issuer never speaks for another tenant's serials: a serial
this issuer did not sign (or that another tenant's issuer signed) is ``unknown``. Responses are
cached until the certificate's state changes or an hour has passed, like CRLs; token-held keys
sign in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509 import ocsp

from certplane.ca.errors import CAError
from certplane.ca.keys.api import ref_scheme
from certplane.ca.keys.errors import KeystoreUnavailable
from certplane.ca.ocsp import (
    CertificateState,
    OcspResponder,
    OcspResult,
    Revoked,
    unsuccessful,
)
from certplane.server.model import Certificate, CertificateStatus, IssuerRecord, IssuerStatus
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuers import IssuerRegistry
from certplane.server.storage.scope import TenantScope

log = logging.getLogger(__name__)

RESPONSE_VALIDITY = timedelta(days=1)
REGENERATE_AFTER = timedelta(hours=1)
CACHED_RESPONSES = 20_000

_UNAUTHORIZED = unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
_TRY_LATER = unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
_INTERNAL_ERROR = unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
_ANSWERING = frozenset({IssuerStatus.ACTIVE.value, IssuerStatus.RETIRED.value})

# tenant, issuer, serial, the request's hash algorithm (its CertID), the signing key's ref
_CacheKey = tuple[str, str, int, str, str]


class OcspService:
    def __init__(self, deps: RADeps, issuers: IssuerRegistry) -> None:
        self._deps = deps
        self._issuers = issuers
        self._responders: dict[tuple[str, str, str, str], OcspResponder] = {}
        self._cache: OrderedDict[_CacheKey, tuple[CertificateState, OcspResult]] = OrderedDict()

    async def respond(self, scope: TenantScope, issuer_id: str, request_der: bytes) -> OcspResult:
        """The DER response to one OCSP request for ``issuer_id`` of this tenant.

        Only issuers that signed certificates answer (active and retired ones; never a pending
        CA or a tenant root, whose key stays offline). A key store that cannot sign now is
        ``tryLater``, any other CA failure ``internalError`` (RFC 6960 §2.3), never an HTTP 500.
        Request nonces are ignored (RFC 5019 §2.1), so every answer is cacheable.
        """
        async with self._deps.uow.begin(scope, write=False) as tx:
            record = await tx.issuers.get(issuer_id)
        if record is None or record.status not in _ANSWERING:
            return _UNAUTHORIZED
        try:
            responder, signer_ref = await self._responder(scope, record)
            parsed = responder.parse(request_der)
            if isinstance(parsed, OcspResult):
                return parsed
            async with self._deps.uow.begin(scope, write=False) as tx:
                cert = await tx.certificates.get_by_serial(format(parsed.serial_number, "x"))
            state = _state(cert, issuer_id)
            now = self._deps.clock.now()
            key = (
                scope.tenant_id,
                issuer_id,
                parsed.serial_number,
                parsed.hash_algorithm.name,
                signer_ref,
            )
            cached = self._cache.get(key)
            if cached and cached[0] == state and _fresh(cached[1], now):
                self._cache.move_to_end(key)
                return cached[1]
            result = await self._sign(signer_ref, responder, parsed, state, now)
        except KeystoreUnavailable:
            return _TRY_LATER
        except CAError as exc:
            log.error("OCSP for issuer %s failed: %s", issuer_id, exc)
            return _INTERNAL_ERROR
        self._remember(key, state, result)
        return result

    async def _responder(
        self, scope: TenantScope, record: IssuerRecord
    ) -> tuple[OcspResponder, str]:
        """The issuer's delegated responder while its certificate outlives a response, else the
        issuer itself (RFC 6960 §4.2.2.2); and the ref of the key that signs."""
        delegated = self._usable_delegate(record)
        signer_ref = record.ocsp_key_ref if delegated and record.ocsp_key_ref else record.key_ref
        key = (scope.tenant_id, record.id, record.key_ref, signer_ref)
        responder = self._responders.get(key)
        if responder is None:
            responder = await asyncio.to_thread(self._build, scope, record, delegated)
            self._responders[key] = responder
        return responder, signer_ref

    def _usable_delegate(self, record: IssuerRecord) -> x509.Certificate | None:
        if record.ocsp_responder_pem is None or record.ocsp_key_ref is None:
            return None
        cert = x509.load_pem_x509_certificate(record.ocsp_responder_pem.encode("ascii"))
        if cert.not_valid_after_utc < self._deps.clock.now() + RESPONSE_VALIDITY:
            log.warning("OCSP responder of issuer %s expires soon: the issuer signs", record.id)
            return None
        return cert

    def _build(
        self, scope: TenantScope, record: IssuerRecord, delegate: x509.Certificate | None
    ) -> OcspResponder:
        issuer, issuer_key = self._issuers.signer(scope, record)
        if delegate is None or record.ocsp_key_ref is None:
            return OcspResponder(issuer, issuer_key, validity=RESPONSE_VALIDITY)
        key = self._issuers.load_key(scope, record.ocsp_key_ref)
        return OcspResponder(issuer, key, validity=RESPONSE_VALIDITY, responder=delegate)

    async def _sign(
        self,
        signer_ref: str,
        responder: OcspResponder,
        request: ocsp.OCSPRequest,
        state: CertificateState,
        now: datetime,
    ) -> OcspResult:
        if ref_scheme(signer_ref) == "soft":
            return responder.respond(request, state, now)
        return await asyncio.to_thread(responder.respond, request, state, now)

    def _remember(self, key: _CacheKey, state: CertificateState, result: OcspResult) -> None:
        self._cache[key] = (state, result)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHED_RESPONSES:
            self._cache.popitem(last=False)


def _state(cert: Certificate | None, issuer_id: str) -> CertificateState:
    """good / Revoked / None (unknown: never issued by this issuer, or only reserved)."""
    if cert is None or cert.issuer_id != issuer_id:
        return None
    if cert.status is CertificateStatus.ISSUED:
        return "good"
    if cert.status is CertificateStatus.REVOKED and cert.revoked_at is not None:
        return Revoked(cert.revoked_at, cert.revocation_reason or 0)
    return None


def _fresh(result: OcspResult, now: datetime) -> bool:
    return result.this_update is not None and now - result.this_update < REGENERATE_AFTER
