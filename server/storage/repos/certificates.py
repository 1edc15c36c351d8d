"""Certificates and issuers of one tenant. A serial is reserved here before anything is signed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from certplane.server.model import (
    Certificate,
    CertificateStatus,
    HierarchyPattern,
    Identifier,
    IssuerRecord,
    IssuerStatus,
)
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w
from certplane.server.storage.repos.orders import identifiers_from_json
from certplane.server.storage.scope import new_id


def _certificate(row: Mapping[str, Any]) -> Certificate:
    return Certificate(
        id=row["id"],
        serial=row["serial"],
        issuer_id=row["issuer_id"],
        order_id=row["order_id"],
        account_id=row["account_id"],
        status=CertificateStatus(row["status"]),
        identifiers=identifiers_from_json(row["identifiers"]),
        spki_sha256=row["spki_sha256"],
        chain_pem=row["chain_pem"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        revoked_at=row["revoked_at"],
        revocation_reason=row["revocation_reason"],
        replaced_by_order=row["replaced_by_order"],
    )


_c = t.certificates
_CERT_BY_ID = scoped_select(_c).where(_c.c.id == w("id"))
_CERT_BY_SERIAL = scoped_select(_c).where(_c.c.serial == w("serial"))
_CERT_MOVE = scoped_update(_c).where(_c.c.id == w("id"), _c.c.status == w("from"))
_CERT_ABANDON = scoped_update(_c).where(
    _c.c.order_id == w("order_id"), _c.c.status == CertificateStatus.RESERVED.value
)
# RFC 9773 §5: claim a certificate for a replacement order, from no one or from one order.
_CERT_CLAIM_UNCLAIMED = scoped_update(_c).where(
    _c.c.id == w("id"), _c.c.replaced_by_order.is_(None)
)
_CERT_CLAIM_FROM = scoped_update(_c).where(
    _c.c.id == w("id"), _c.c.replaced_by_order == w("previous")
)
_CERTS_BY_FINGERPRINT = scoped_select(_c, _c.c.id, _c.c.fingerprint_sha256).where(
    _c.c.fingerprint_sha256.in_(w("fingerprints", True)),
    _c.c.status.in_([CertificateStatus.ISSUED.value, CertificateStatus.REVOKED.value]),
)
_CERTS_OF_ORDER = scoped_select(_c).where(_c.c.order_id == w("order_id")).order_by(_c.c.created_at)
_REVOKED_BY_ISSUER = (
    scoped_select(_c, _c.c.serial, _c.c.revoked_at, _c.c.revocation_reason)
    .where(_c.c.issuer_id == w("issuer_id"), _c.c.status == CertificateStatus.REVOKED.value)
    .order_by(_c.c.revoked_at)
)


class CertificateRepo(ScopedRepo):
    table = t.certificates

    async def get(self, cert_id: str) -> Certificate | None:
        row = await self._one(_CERT_BY_ID, w_id=cert_id)
        return None if row is None else _certificate(row)

    async def for_order(self, order_id: str) -> list[Certificate]:
        """Every certificate row of an order: issued, revoked, reserved or abandoned attempts."""
        return [_certificate(row) for row in await self._all(_CERTS_OF_ORDER, w_order_id=order_id)]

    async def get_by_serial(self, serial: str) -> Certificate | None:
        row = await self._one(_CERT_BY_SERIAL, w_serial=serial)
        return None if row is None else _certificate(row)

    async def reserve(
        self,
        *,
        serial: str,
        issuer_id: str,
        order_id: str,
        account_id: str,
        identifiers: Sequence[Identifier],
        now: datetime,
    ) -> str:
        """Record a serial before signing, so no signed certificate is ever unknown."""
        cert_id = new_id()
        await self._insert(
            id=cert_id,
            serial=serial,
            issuer_id=issuer_id,
            order_id=order_id,
            account_id=account_id,
            status=CertificateStatus.RESERVED.value,
            identifiers=[i.to_json() for i in identifiers],
            created_at=now,
        )
        return cert_id

    async def mark_issued(
        self,
        cert_id: str,
        *,
        chain_pem: str,
        spki_sha256: str,
        fingerprint_sha256: str,
        not_before: datetime,
        not_after: datetime,
    ) -> bool:
        moved = await self._write(
            _CERT_MOVE,
            w_id=cert_id,
            w_from=CertificateStatus.RESERVED.value,
            status=CertificateStatus.ISSUED.value,
            chain_pem=chain_pem,
            spki_sha256=spki_sha256,
            fingerprint_sha256=fingerprint_sha256,
            not_before=not_before,
            not_after=not_after,
        )
        return moved == 1

    async def ids_by_fingerprint(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """{leaf SHA-256 hex: certificate id} of the issued or revoked certificates among
        ``fingerprints`` (a reserved or abandoned serial has no certificate to match)."""
        if not fingerprints:
            return {}
        rows = await self._all(_CERTS_BY_FINGERPRINT, w_fingerprints=list(fingerprints))
        return {row["fingerprint_sha256"]: row["id"] for row in rows}

    async def abandon_reserved(self, order_id: str) -> None:
        """Reservations of a failed attempt: never signed, or signed and never released."""
        await self._write(
            _CERT_ABANDON, w_order_id=order_id, status=CertificateStatus.ABANDONED.value
        )

    async def claim_replacement(self, cert_id: str, order_id: str, *, previous: str | None) -> bool:
        """Mark the certificate as replaced by ``order_id`` if ``previous`` still holds the
        claim (None: no order does). A guarded update: of concurrent claims from the same
        ``previous``, exactly one changes the row (PostgreSQL re-checks the WHERE clause after
        the first commits; SQLite serialises write transactions)."""
        if previous is None:
            moved = await self._write(
                _CERT_CLAIM_UNCLAIMED, w_id=cert_id, replaced_by_order=order_id
            )
        else:
            moved = await self._write(
                _CERT_CLAIM_FROM, w_id=cert_id, w_previous=previous, replaced_by_order=order_id
            )
        return moved == 1

    async def revoked_by_issuer(self, issuer_id: str) -> list[tuple[str, datetime, int]]:
        """(serial hex, revoked_at, reason) of every revoked certificate of one issuer."""
        rows = await self._all(_REVOKED_BY_ISSUER, w_issuer_id=issuer_id)
        return [(r["serial"], r["revoked_at"], r["revocation_reason"] or 0) for r in rows]

    async def revoke(self, cert_id: str, reason: int, now: datetime) -> bool:
        moved = await self._write(
            _CERT_MOVE,
            w_id=cert_id,
            w_from=CertificateStatus.ISSUED.value,
            status=CertificateStatus.REVOKED.value,
            revoked_at=now,
            revocation_reason=reason,
        )
        return moved == 1


def _issuer(row: Mapping[str, Any]) -> IssuerRecord:
    return IssuerRecord(
        id=row["id"],
        name=row["name"],
        certificate_pem=row["certificate_pem"],
        chain_pem=row["chain_pem"],
        key_ref=row["key_ref"],
        status=row["status"],
        pattern=row["pattern"],
        root_pem=row["root_pem"],
        csr_pem=row["csr_pem"],
        created_at=row["created_at"],
        retired_at=row["retired_at"],
        alternate_chains=tuple(json.loads(row["alternate_chains"])),
        ocsp_responder_pem=row["ocsp_responder_pem"],
        ocsp_key_ref=row["ocsp_key_ref"],
        crl_number=int(row["crl_number"]),
    )


_i = t.issuers
_ACTIVE_ISSUERS = (
    scoped_select(_i)
    .where(_i.c.status == IssuerStatus.ACTIVE.value)
    .order_by(_i.c.created_at.desc())
)
_ISSUER_BY_ID = scoped_select(_i).where(_i.c.id == w("id"))
_ISSUERS = scoped_select(_i).order_by(_i.c.created_at)
_ISSUER_SET = scoped_update(_i).where(_i.c.id == w("id"))
_ISSUER_CRL_NUMBER = (
    scoped_update(_i).where(_i.c.id == w("id")).values(crl_number=_i.c.crl_number + 1)
)
_ISSUER_MOVE = scoped_update(_i).where(_i.c.id == w("id"), _i.c.status == w("from"))


class IssuerRepo(ScopedRepo):
    table = t.issuers

    async def active(self) -> list[IssuerRecord]:
        """Every issuer that signs new certificates, newest first."""
        return [_issuer(r) for r in await self._all(_ACTIVE_ISSUERS)]

    async def get(self, issuer_id: str) -> IssuerRecord | None:
        row = await self._one(_ISSUER_BY_ID, w_id=issuer_id)
        return None if row is None else _issuer(row)

    async def list(self) -> list[IssuerRecord]:
        return [_issuer(r) for r in await self._all(_ISSUERS)]

    async def create(
        self,
        *,
        issuer_id: str,
        name: str,
        certificate_pem: str,
        chain_pem: str,
        key_ref: str,
        now: datetime,
        status: IssuerStatus = IssuerStatus.ACTIVE,
        pattern: HierarchyPattern = HierarchyPattern.PLATFORM_ROOT,
        root_pem: str = "",
        csr_pem: str | None = None,
    ) -> None:
        await self._insert(
            id=issuer_id,
            name=name,
            certificate_pem=certificate_pem,
            chain_pem=chain_pem,
            key_ref=key_ref,
            status=status.value,
            created_at=now,
            pattern=pattern.value,
            root_pem=root_pem,
            csr_pem=csr_pem,
        )

    async def activate(
        self, issuer_id: str, *, certificate_pem: str, chain_pem: str, root_pem: str
    ) -> bool:
        """A pending issuer gets its imported certificate and starts signing."""
        count = await self._write(
            _ISSUER_MOVE,
            w_id=issuer_id,
            w_from=IssuerStatus.PENDING.value,
            certificate_pem=certificate_pem,
            chain_pem=chain_pem,
            root_pem=root_pem,
            status=IssuerStatus.ACTIVE.value,
        )
        return count == 1

    async def set_ocsp_responder(
        self, issuer_id: str, *, certificate_pem: str | None, key_ref: str | None
    ) -> None:
        await self._write(
            _ISSUER_SET, w_id=issuer_id, ocsp_responder_pem=certificate_pem, ocsp_key_ref=key_ref
        )

    async def next_crl_number(self, issuer_id: str) -> int | None:
        """Increment the issuer's CRL number and return it (None: no such issuer). The update
        holds the row until commit, so concurrent transactions get distinct numbers."""
        if await self._write(_ISSUER_CRL_NUMBER, w_id=issuer_id) != 1:
            return None
        record = await self.get(issuer_id)
        return None if record is None else record.crl_number

    async def set_alternate_chains(self, issuer_id: str, chains: Sequence[str]) -> None:
        await self._write(_ISSUER_SET, w_id=issuer_id, alternate_chains=json.dumps(list(chains)))

    async def retire(self, issuer_id: str, now: datetime) -> bool:
        """An active issuer stops signing certificates (it keeps signing CRLs and OCSP)."""
        count = await self._write(
            _ISSUER_MOVE,
            w_id=issuer_id,
            w_from=IssuerStatus.ACTIVE.value,
            status=IssuerStatus.RETIRED.value,
            retired_at=now,
        )
        return count == 1


_j = t.jobs
_JOB_BY_ID = scoped_select(_j).where(_j.c.id == w("id"))
_JOB_UPDATE = scoped_update(_j).where(_j.c.id == w("id"))


class JobRepo(ScopedRepo):
    """Durable jobs of one tenant; claiming across tenants lives in ``storage.ops``."""

    table = t.jobs

    async def enqueue(
        self,
        kind: str,
        object_id: str,
        *,
        now: datetime,
        locked_until: datetime | None,
        deadline: datetime,
        run_at: datetime | None = None,
    ) -> str:
        job_id = new_id()
        await self._insert(
            id=job_id,
            kind=kind,
            object_id=object_id,
            status="queued",
            attempts=1 if locked_until else 0,
            run_at=run_at or now,
            locked_until=locked_until,
            deadline=deadline,
            created_at=now,
        )
        return job_id

    async def get(self, job_id: str) -> dict[str, Any] | None:
        row = await self._one(_JOB_BY_ID, w_id=job_id)
        return None if row is None else dict(row)

    async def finish(self, job_id: str, status: str, error: str | None = None) -> None:
        await self._write(_JOB_UPDATE, w_id=job_id, status=status, last_error=error)

    async def reschedule(self, job_id: str, run_at: datetime, error: str) -> None:
        values = {"run_at": run_at, "locked_until": None, "last_error": error}
        await self._write(_JOB_UPDATE, w_id=job_id, **values)
