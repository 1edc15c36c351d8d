"""When to issue, deploy, renew or ask ARI for each managed certificate.

Two halves, both free of I/O:

* :func:`next_action` decides from a :class:`~certplane.agent.state.CertState` and the time
  alone. It draws no random number, so the same state gives the same answer before and after a
  restart.
* :class:`Scheduler` applies what happened (issued, deployed, failed, an ARI answer) and returns
  the new state. Every random choice (the renewal time inside an ARI window or around two thirds
  of the lifetime, the jitter of a backoff) is made there, once, with the injected random source,
  and kept in the state; the caller persists it with :class:`~certplane.agent.state.StateStore`.

The clock and the random source are injected: tests pass a fake clock and ``random.Random(seed)``,
the daemon ``SystemClock()`` and ``random.SystemRandom()``.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol

from certplane.agent.state import (
    AriState,
    CertificateInfo,
    CertState,
    RenewalChoice,
    Status,
    Window,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Action(StrEnum):
    ISSUE = "issue"
    DEPLOY = "deploy"
    RENEW = "renew"
    POLL_ARI = "poll-ari"


class NextAction(NamedTuple):
    """What to do next for one certificate and when; unpacks as ``(what, when)``."""

    what: Action
    when: datetime


@dataclass(frozen=True)
class RenewalPolicy:
    """The knobs of scheduling; the defaults are the agent's behaviour.

    Without ARI a certificate is renewed at ``lifetime_fraction`` of its lifetime, moved by a
    random offset within ± ``lifetime_jitter`` of the lifetime. The n-th consecutive failure waits
    ``min(backoff_first · 2^(n-1), backoff_max)`` shortened by a random share of up to
    ``backoff_jitter`` (so the cap is never exceeded). An ARI answer without Retry-After is asked
    again after ``ari_default_retry`` (RFC 9773 §4.3 suggests six hours), one with a shorter
    Retry-After than ``ari_min_retry`` after that minimum; a failed ARI request after
    ``ari_error_retry``.
    """

    lifetime_fraction: float = 2 / 3
    lifetime_jitter: float = 0.05
    backoff_first: timedelta = timedelta(minutes=5)
    backoff_max: timedelta = timedelta(hours=6)
    backoff_jitter: float = 0.1
    ari_default_retry: timedelta = timedelta(hours=6)
    ari_min_retry: timedelta = timedelta(minutes=1)
    ari_error_retry: timedelta = timedelta(hours=1)
    max_error_length: int = 1000


DEFAULT_POLICY = RenewalPolicy()


# -- the decision -------------------------------------------------------------------------------


def next_action(
    state: CertState,
    now: datetime,
    *,
    renew_before: timedelta | None = None,
    policy: RenewalPolicy = DEFAULT_POLICY,
) -> NextAction:
    """The next action for ``state`` and when it is due (never earlier than ``now``).

    Rules, in order:

    1. ``pending``, or no certificate recorded → ISSUE.
    2. ``issued-not-deployed`` → DEPLOY (the certificate is written again after a crash).
    3. Otherwise RENEW at the chosen renewal time (``state.renewal.at``; a state without a choice,
       which :class:`Scheduler` never produces, uses exactly ``lifetime_fraction`` of the
       lifetime). With ``renew_before`` (the certificate's ``before_expiry_days``) the renewal is
       moved earlier to ``not_after - renew_before`` when that comes first.
    4. After a failure (``failures > 0``) ISSUE, DEPLOY and RENEW are not due before
       ``state.next_attempt`` (the persisted backoff).
    5. In case 3, ARI comes first when it is due strictly earlier than the renewal: a certificate
       with an ARI CertID is asked at once when no ARI answer is recorded, else at
       ``state.ari.next_poll`` (its Retry-After) and never before.
    6. A time in the past (a window wholly in the past, a missed renewal) means ``now``.
    """
    if state.status is Status.PENDING or state.certificate is None:
        return _due(Action.ISSUE, _after_backoff(state, now), now)
    if state.status is Status.ISSUED_NOT_DEPLOYED:
        return _due(Action.DEPLOY, _after_backoff(state, now), now)
    renew_at = _after_backoff(state, _renewal_time(state, state.certificate, renew_before, policy))
    poll_at = _ari_poll_time(state, state.certificate, now)
    if poll_at is not None and poll_at < renew_at:
        return _due(Action.POLL_ARI, poll_at, now)
    return _due(Action.RENEW, renew_at, now)


def _due(what: Action, when: datetime, now: datetime) -> NextAction:
    return NextAction(what, max(when, now))


def _after_backoff(state: CertState, when: datetime) -> datetime:
    if state.failures and state.next_attempt is not None:
        return max(when, state.next_attempt)
    return when


def _renewal_time(
    state: CertState,
    cert: CertificateInfo,
    renew_before: timedelta | None,
    policy: RenewalPolicy,
) -> datetime:
    if state.renewal is not None:
        chosen = state.renewal.at
    else:
        chosen = cert.not_before + cert.lifetime * policy.lifetime_fraction
    if renew_before is not None:
        chosen = min(chosen, cert.not_after - renew_before)
    return chosen


def _ari_poll_time(state: CertState, cert: CertificateInfo, now: datetime) -> datetime | None:
    if cert.ari_cert_id is None:
        return None
    return now if state.ari is None else state.ari.next_poll


# -- the random choices -------------------------------------------------------------------------


def choose_in_window(window: Window, rng: random.Random) -> datetime:
    """A uniformly random time in ``[start, end)`` (RFC 9773 §4.2, step 1)."""
    return window.start + (window.end - window.start) * rng.random()


def choose_by_lifetime(
    cert: CertificateInfo, rng: random.Random, policy: RenewalPolicy = DEFAULT_POLICY
) -> datetime:
    """``lifetime_fraction`` of the lifetime, ± up to ``lifetime_jitter`` of the lifetime."""
    offset = cert.lifetime * (policy.lifetime_jitter * (2 * rng.random() - 1))
    return cert.not_before + cert.lifetime * policy.lifetime_fraction + offset


def backoff_delay(
    failures: int, rng: random.Random, policy: RenewalPolicy = DEFAULT_POLICY
) -> timedelta:
    """The wait after the ``failures``-th consecutive failure (see :class:`RenewalPolicy`)."""
    if failures < 1:
        raise ValueError("backoff_delay needs at least one failure")
    doublings = min(failures - 1, 32)  # 2**32 · anything already exceeds any sensible cap
    delay = min(policy.backoff_first * (1 << doublings), policy.backoff_max)
    return delay * (1 - policy.backoff_jitter * rng.random())


# -- the transitions ----------------------------------------------------------------------------


class Scheduler:
    """Applies events to a certificate's state; all time and randomness are injected."""

    def __init__(
        self, *, clock: Clock, rng: random.Random, policy: RenewalPolicy = DEFAULT_POLICY
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.policy = policy

    def next_action(self, state: CertState, *, renew_before: timedelta | None = None) -> NextAction:
        """:func:`next_action` at the clock's current time."""
        return next_action(state, self.clock.now(), renew_before=renew_before, policy=self.policy)

    def issued(self, state: CertState, certificate: CertificateInfo) -> CertState:
        """A certificate was issued (and must now be deployed): its renewal time is chosen by
        lifetime until ARI says otherwise; earlier ARI answers and failures are forgotten."""
        return dataclasses.replace(
            state,
            status=Status.ISSUED_NOT_DEPLOYED,
            certificate=certificate,
            ari=None,
            renewal=RenewalChoice(choose_by_lifetime(certificate, self.rng, self.policy)),
            failures=0,
            next_attempt=None,
            last_error=None,
        )

    def deployed(self, state: CertState) -> CertState:
        """The issued certificate is in place (files written, reloaded, verified).

        Precondition: a certificate is recorded.
        """
        if state.certificate is None:
            raise ValueError(f"{state.name}: nothing was issued, so nothing can be deployed")
        return dataclasses.replace(
            state, status=Status.DEPLOYED, failures=0, next_attempt=None, last_error=None
        )

    def failed(self, state: CertState, error: str) -> CertState:
        """The last action failed: count it, back off, remember why. A failed deployment stays
        ``issued-not-deployed`` (it is retried); any other failure becomes ``failed``."""
        failures = state.failures + 1
        delay = backoff_delay(failures, self.rng, self.policy)
        status = state.status if state.status is Status.ISSUED_NOT_DEPLOYED else Status.FAILED
        return dataclasses.replace(
            state,
            status=status,
            failures=failures,
            next_attempt=self.clock.now() + delay,
            last_error=error[: self.policy.max_error_length],
        )

    def ari_fetched(
        self, state: CertState, window: Window, retry_after: timedelta | None = None
    ) -> CertState:
        """An ARI answer for the current certificate. A new renewal time is drawn only when the
        window differs from the one the current choice came from.

        Precondition: a certificate is recorded. An invalid window (end not after start) cannot
        be built: treat it as :meth:`ari_unavailable`, as RFC 9773 §4.2 requires.
        """
        if state.certificate is None:
            raise ValueError(f"{state.name}: ARI concerns an issued certificate; there is none")
        now = self.clock.now()
        renewal = state.renewal
        if renewal is None or renewal.window != window:
            renewal = RenewalChoice(choose_in_window(window, self.rng), window)
        ari = AriState(window, now, now + self._retry(retry_after, self.policy.ari_default_retry))
        return dataclasses.replace(state, ari=ari, renewal=renewal)

    def ari_unavailable(self, state: CertState, retry_after: timedelta | None = None) -> CertState:
        """ARI could not be asked or gave no usable answer: keep what is known (a previous window
        and its renewal time) and ask again after ``retry_after`` or ``ari_error_retry``."""
        now = self.clock.now()
        next_poll = now + self._retry(retry_after, self.policy.ari_error_retry)
        if state.ari is None:
            ari = AriState(None, now, next_poll)
        else:
            ari = dataclasses.replace(state.ari, next_poll=next_poll)
        return dataclasses.replace(state, ari=ari)

    def reissue(self, state: CertState) -> CertState:
        """Ask for a new certificate now (its names changed, an operator asked): ``pending``.
        The recorded certificate stays for reporting until the new one is issued."""
        return dataclasses.replace(state, status=Status.PENDING, failures=0, next_attempt=None)

    def _retry(self, retry_after: timedelta | None, default: timedelta) -> timedelta:
        if retry_after is None:
            return default
        return max(retry_after, self.policy.ari_min_retry)
