"""The suggested renewal window (RFC 9773 §4.2) as pure rules: the policy's fractions of the
lifetime, or a window wholly in the past once the certificate is revoked or its issuer retired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certplane.policy.document import Policy
from certplane.server.model import (
    Certificate,
    CertificateStatus,
    IssuerRecord,
    IssuerStatus,
)
from certplane.server.ra.renewal_info import (
    PAST_MARGIN,
    PAST_WIDTH,
    RenewalWindow,
    WindowCause,
    past_window,
    scheduled_window,
    suggested_window,
)

NOT_BEFORE = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
NOT_AFTER = NOT_BEFORE + timedelta(days=90)
REVOKED_AT = datetime(2026, 1, 10, 12, 30, 15, 250_000, tzinfo=UTC)
RETIRED_AT = datetime(2026, 1, 20, 8, 0, 0, tzinfo=UTC)
LATER = RETIRED_AT + timedelta(days=1)


def _certificate(*, revoked_at: datetime | None = None) -> Certificate:
    return Certificate(
        id="c1",
        serial="1f",
        issuer_id="i1",
        order_id="o1",
        account_id="a1",
        status=CertificateStatus.REVOKED if revoked_at else CertificateStatus.ISSUED,
        identifiers=(),
        spki_sha256="00",
        chain_pem="",
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        revoked_at=revoked_at,
        revocation_reason=1 if revoked_at else None,
    )


def _issuer(status: IssuerStatus, retired_at: datetime | None = None) -> IssuerRecord:
    return IssuerRecord(
        id="i1",
        name="issuer",
        certificate_pem="",
        chain_pem="",
        key_ref="soft:x",
        status=status.value,
        retired_at=retired_at,
    )


def test_the_builtin_window_starts_at_two_thirds_of_the_lifetime():
    start, end = Policy.builtin().renewal_window
    assert start == pytest.approx(2 / 3, abs=1e-4) and end == 0.9
    window = scheduled_window(NOT_BEFORE, NOT_AFTER, (start, end))
    # 0.6667 × 90 days = 60 days 259.2 s, truncated to whole seconds; 0.9 × 90 days = 81 days.
    assert window == RenewalWindow(
        NOT_BEFORE + timedelta(days=60, seconds=259),
        NOT_BEFORE + timedelta(days=81),
        WindowCause.SCHEDULED,
    )
    assert not window.moved


def test_other_fractions_and_whole_seconds():
    not_after = NOT_BEFORE + timedelta(days=7, seconds=1)
    window = scheduled_window(NOT_BEFORE, not_after, (0.5, 0.75))
    assert window.start == NOT_BEFORE + timedelta(days=3, hours=12)  # 302400.5 s
    assert window.end == NOT_BEFORE + timedelta(days=5, hours=6)  # 453600.75 s
    assert window.start.microsecond == window.end.microsecond == 0


def test_a_window_never_ends_before_it_starts():
    """§4.2: a RenewalInfo whose end equals or precedes its start is invalid."""
    window = scheduled_window(NOT_BEFORE, NOT_BEFORE + timedelta(days=1), (0.5, 0.500001))
    assert window.end == window.start + timedelta(seconds=1)


def test_a_past_window_ends_a_margin_before_the_event():
    window = past_window(REVOKED_AT, WindowCause.REVOKED)
    end = REVOKED_AT.replace(microsecond=0) - PAST_MARGIN
    assert window == RenewalWindow(end - PAST_WIDTH, end, WindowCause.REVOKED)
    assert window.moved and window.start < window.end < REVOKED_AT


@pytest.mark.parametrize(
    ("revoked_at", "issuer", "expected"),
    [
        (None, _issuer(IssuerStatus.ACTIVE), None),
        (None, None, None),  # the issuer row is gone: the schedule still applies
        (None, _issuer(IssuerStatus.RETIRED, RETIRED_AT), (RETIRED_AT, "issuer-retired")),
        (REVOKED_AT, _issuer(IssuerStatus.ACTIVE), (REVOKED_AT, "revoked")),
        (REVOKED_AT, _issuer(IssuerStatus.RETIRED, RETIRED_AT), (REVOKED_AT, "revoked")),
        (LATER, _issuer(IssuerStatus.RETIRED, RETIRED_AT), (RETIRED_AT, "issuer-retired")),
    ],
)
def test_suggested_window_rules(revoked_at, issuer, expected):
    """Revoked or issuer retired: a past window from the earlier of the two; else the policy's."""
    fractions = (0.6, 0.8)
    window = suggested_window(_certificate(revoked_at=revoked_at), issuer, fractions)
    if expected is None:
        assert window == scheduled_window(NOT_BEFORE, NOT_AFTER, fractions)
    else:
        since, cause = expected
        assert window == past_window(since, WindowCause(cause))
