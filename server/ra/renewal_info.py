"""ACME Renewal Information (RFC 9773 §4): when a certificate should be renewed.

The suggested window (§4.2) comes from the tenant policy in force: ``renewal.window_start`` and
``renewal.window_end`` are fractions of the certificate's lifetime counted from notBefore (the
built-in policy: from about two thirds to nine tenths). A certificate that must be replaced now
gets a window wholly in the past instead, which a client following §4.2's algorithm acts on at
once ("If the selected time is in the past, attempt renewal immediately"):

- a revoked certificate, from the moment it was revoked;
- a certificate whose issuer a rotation retired (``IssuerStatus.RETIRED``), from the moment it
  was retired: it still validates, but the tenant has moved to a new key.

Such a window ends ``PAST_MARGIN`` before that moment, so a client whose clock is behind still
sees it in the past (§6 on clock skew), and is ``PAST_WIDTH`` wide (§4.2: a window whose end
does not follow its start is invalid). Windows are in whole seconds, as RFC 3339 renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from certplane.server.errors import malformed, not_found
from certplane.server.model import Certificate, CertificateStatus, IssuerRecord, IssuerStatus
from certplane.server.ra.ari import names_certificate, parse_cert_id
from certplane.server.ra.deps import RADeps
from certplane.server.storage.scope import TenantScope

PAST_MARGIN = timedelta(hours=1)
PAST_WIDTH = timedelta(hours=1)
_SECOND = timedelta(seconds=1)


class WindowCause(StrEnum):
    """Why the window is where it is."""

    SCHEDULED = "scheduled"  # the tenant policy's fractions of the lifetime
    REVOKED = "revoked"
    ISSUER_RETIRED = "issuer-retired"


@dataclass(frozen=True)
class RenewalWindow:
    """A suggested renewal window (RFC 9773 §4.2): whole seconds, ``start`` before ``end``."""

    start: datetime
    end: datetime
    cause: WindowCause

    @property
    def moved(self) -> bool:
        """Whether the server moved the window away from the schedule (into the past)."""
        return self.cause is not WindowCause.SCHEDULED


def scheduled_window(
    not_before: datetime, not_after: datetime, fractions: Sequence[float]
) -> RenewalWindow:
    """notBefore + start×lifetime .. notBefore + end×lifetime, truncated to whole seconds; an
    end that would not follow the start is moved one second after it (§4.2)."""
    lifetime = not_after - not_before
    start = _whole_seconds(not_before + lifetime * fractions[0])
    end = max(_whole_seconds(not_before + lifetime * fractions[1]), start + _SECOND)
    return RenewalWindow(start, end, WindowCause.SCHEDULED)


def past_window(since: datetime, cause: WindowCause) -> RenewalWindow:
    """A window wholly in the past of ``since``: renew now (§4.2, §6)."""
    end = _whole_seconds(since) - PAST_MARGIN
    return RenewalWindow(end - PAST_WIDTH, end, cause)


def suggested_window(
    certificate: Certificate, issuer: IssuerRecord | None, fractions: Sequence[float]
) -> RenewalWindow:
    """The window of an issued or revoked certificate (rules in the module docstring); when
    it was both revoked and its issuer retired, the earlier of the two moves it.

    Precondition: ``certificate`` has its validity (it is issued or revoked).
    """
    assert certificate.not_before is not None and certificate.not_after is not None
    moves: list[tuple[datetime, WindowCause]] = []
    if certificate.status is CertificateStatus.REVOKED and certificate.revoked_at is not None:
        moves.append((certificate.revoked_at, WindowCause.REVOKED))
    if issuer is not None and issuer.status == IssuerStatus.RETIRED.value and issuer.retired_at:
        moves.append((issuer.retired_at, WindowCause.ISSUER_RETIRED))
    if moves:
        return past_window(*min(moves))
    return scheduled_window(certificate.not_before, certificate.not_after, fractions)


class RenewalInfoService:
    """The ``renewalInfo`` resource's use case: unauthenticated, read-only, tenant-scoped."""

    def __init__(self, deps: RADeps) -> None:
        self._deps = deps

    async def renewal_window(self, scope: TenantScope, cert_id_text: str) -> RenewalWindow:
        """The suggested window of the certificate ``cert_id_text`` names (RFC 9773 §4.1).

        Raises:
            AcmeProblem: ``malformed`` (400) when the text is not a CertID; ``malformed`` with
                404 when no issued or revoked certificate of this tenant has both its serial
                and its AKI keyIdentifier (another tenant's certificate included).
        """
        try:
            cert_id = parse_cert_id(cert_id_text)
        except ValueError as exc:
            raise malformed(f"not an ARI CertID (RFC 9773 §4.1): {exc}") from None
        async with self._deps.uow.begin(scope, write=False) as tx:
            certificate = await tx.certificates.get_by_serial(format(cert_id.serial, "x"))
            if certificate is None or not names_certificate(certificate, cert_id):
                raise not_found("certificate")
            issuer = await tx.issuers.get(certificate.issuer_id)
            active = await self._deps.policies.current(tx)
        return suggested_window(certificate, issuer, active.policy.renewal_window)


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
