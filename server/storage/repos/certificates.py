"""Certificates and issuers of one tenant. A serial is reserved here before anything is signed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from certplane.server.model import Certificate, CertificateStatus, Identifier, IssuerRecord
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo
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
    )


class CertificateRepo(ScopedRepo):
    table = t.certificates

    async def get(self, cert_id: str) -> Certificate | None:
        row = await self._one(self._select().where(t.certificates.c.id == cert_id))
        return None if row is None else _certificate(row)

    async def get_by_serial(self, serial: str) -> Certificate | None:
        row = await self._one(self._select().where(t.certificates.c.serial == serial))
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
        not_before: datetime,
        not_after: datetime,
    ) -> bool:
        stmt = (
            self._update()
            .where(
                t.certificates.c.id == cert_id,
                t.certificates.c.status == CertificateStatus.RESERVED.value,
            )
            .values(
                status=CertificateStatus.ISSUED.value,
                chain_pem=chain_pem,
                spki_sha256=spki_sha256,
                not_before=not_before,
                not_after=not_after,
            )
        )
        return await self._write(stmt) == 1

    async def abandon_reserved(self, order_id: str) -> None:
        """Reservations of a failed attempt: never signed, or signed and never released."""
        stmt = (
            self._update()
            .where(
                t.certificates.c.order_id == order_id,
                t.certificates.c.status == CertificateStatus.RESERVED.value,
            )
            .values(status=CertificateStatus.ABANDONED.value)
        )
        await self._write(stmt)

    async def revoked_by_issuer(self, issuer_id: str) -> list[tuple[str, datetime, int]]:
        """(serial hex, revoked_at, reason) of every revoked certificate of one issuer."""
        c = t.certificates
        stmt = (
            self._select()
            .where(c.c.issuer_id == issuer_id, c.c.status == CertificateStatus.REVOKED.value)
            .order_by(c.c.revoked_at)
        )
        return [
            (r["serial"], r["revoked_at"], r["revocation_reason"] or 0)
            for r in await self._all(stmt)
        ]

    async def revoke(self, cert_id: str, reason: int, now: datetime) -> bool:
        stmt = (
            self._update()
            .where(
                t.certificates.c.id == cert_id,
                t.certificates.c.status == CertificateStatus.ISSUED.value,
            )
            .values(
                status=CertificateStatus.REVOKED.value, revoked_at=now, revocation_reason=reason
            )
        )
        return await self._write(stmt) == 1


def _issuer(row: Mapping[str, Any]) -> IssuerRecord:
    return IssuerRecord(
        id=row["id"],
        name=row["name"],
        certificate_pem=row["certificate_pem"],
        chain_pem=row["chain_pem"],
        key_ref=row["key_ref"],
        status=row["status"],
    )


class IssuerRepo(ScopedRepo):
    table = t.issuers

    async def active(self) -> IssuerRecord | None:
        stmt = self._select().where(t.issuers.c.status == "active")
        row = await self._one(stmt.order_by(t.issuers.c.created_at.desc()).limit(1))
        return None if row is None else _issuer(row)

    async def get(self, issuer_id: str) -> IssuerRecord | None:
        row = await self._one(self._select().where(t.issuers.c.id == issuer_id))
        return None if row is None else _issuer(row)

    async def list(self) -> list[IssuerRecord]:
        return [
            _issuer(r) for r in await self._all(self._select().order_by(t.issuers.c.created_at))
        ]

    async def create(
        self,
        *,
        issuer_id: str,
        name: str,
        certificate_pem: str,
        chain_pem: str,
        key_ref: str,
        now: datetime,
    ) -> None:
        await self._insert(
            id=issuer_id,
            name=name,
            certificate_pem=certificate_pem,
            chain_pem=chain_pem,
            key_ref=key_ref,
            status="active",
            created_at=now,
        )


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
    ) -> str:
        job_id = new_id()
        await self._insert(
            id=job_id,
            kind=kind,
            object_id=object_id,
            status="queued",
            attempts=1 if locked_until else 0,
            run_at=now,
            locked_until=locked_until,
            deadline=deadline,
            created_at=now,
        )
        return job_id

    async def get(self, job_id: str) -> dict[str, Any] | None:
        row = await self._one(self._select().where(t.jobs.c.id == job_id))
        return None if row is None else dict(row)

    async def finish(self, job_id: str, status: str, error: str | None = None) -> None:
        stmt = self._update().where(t.jobs.c.id == job_id).values(status=status, last_error=error)
        await self._write(stmt)

    async def reschedule(self, job_id: str, run_at: datetime, error: str) -> None:
        stmt = (
            self._update()
            .where(t.jobs.c.id == job_id)
            .values(run_at=run_at, locked_until=None, last_error=error)
        )
        await self._write(stmt)
