"""Renewal timing: decisions from the persisted state and an injected clock, random choices made
once and kept across restarts, ARI windows and Retry-After honoured, backoff persisted."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certplane.agent.scheduler import (
    Action,
    NextAction,
    RenewalPolicy,
    Scheduler,
    backoff_delay,
    next_action,
)
from certplane.agent.state import (
    CertificateInfo,
    CertState,
    StateError,
    StateStore,
    Status,
    Window,
    describe_certificate,
    state_from_json,
    state_to_json,
)
from certplane.agent.store import FileSpec, deploy

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FixedRandom(random.Random):
    """A random source that always answers ``value`` (to read exact sequences)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def certificate(not_before: datetime = T0, days: int = 90, ari: bool = True) -> CertificateInfo:
    return CertificateInfo(
        fingerprint_sha256="ab" * 32,
        serial="1234",
        not_before=not_before,
        not_after=not_before + days * DAY,
        ari_cert_id="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" if ari else None,
    )


def scheduler(clock: FakeClock | None = None, seed: int = 1) -> Scheduler:
    return Scheduler(clock=clock or FakeClock(), rng=random.Random(seed))


def deployed_state(sched: Scheduler, cert: CertificateInfo | None = None) -> CertState:
    return sched.deployed(sched.issued(CertState("www"), cert or certificate()))


# -- the basic rules ----------------------------------------------------------------------------


def test_without_a_certificate_issue_now():
    assert next_action(CertState("www"), T0) == (Action.ISSUE, T0)


def test_issued_but_not_deployed_deploy_now():
    sched = scheduler()
    state = sched.issued(CertState("www"), certificate())
    assert state.status is Status.ISSUED_NOT_DEPLOYED
    assert sched.next_action(state) == NextAction(Action.DEPLOY, T0)


def test_a_new_certificate_asks_ari_at_once_when_it_has_a_cert_id():
    state = deployed_state(scheduler())
    assert next_action(state, T0) == (Action.POLL_ARI, T0)


def test_a_certificate_without_cert_id_never_polls_ari():
    state = deployed_state(scheduler(), certificate(ari=False))
    assert next_action(state, T0).what is Action.RENEW


def test_reissue_means_issue_now_and_keeps_the_certificate_for_reports():
    sched = scheduler()
    state = sched.reissue(deployed_state(sched))
    assert state.certificate is not None
    assert sched.next_action(state) == (Action.ISSUE, T0)


# -- ARI ----------------------------------------------------------------------------------------


def with_window(sched: Scheduler, window: Window, retry: timedelta = 60 * DAY) -> CertState:
    return sched.ari_fetched(deployed_state(sched), window, retry_after=retry)


def test_the_ari_renewal_time_is_uniform_inside_the_window():
    window = Window(T0 + 50 * DAY, T0 + 52 * DAY)
    times = []
    for seed in range(300):
        state = with_window(scheduler(seed=seed), window)
        what, when = next_action(state, T0)
        assert what is Action.RENEW
        assert window.start <= when < window.end
        assert state.renewal is not None and state.renewal.at == when
        times.append(when)
    # Spread over the window, not clustered at one end.
    assert min(times) < window.start + timedelta(hours=5)
    assert max(times) > window.end - timedelta(hours=5)


def test_the_ari_choice_is_the_same_after_a_restart(tmp_path: Path):
    clock = FakeClock()
    window = Window(T0 + 50 * DAY, T0 + 52 * DAY)
    state = with_window(scheduler(clock, seed=7), window)
    before = next_action(state, clock.now())
    StateStore(tmp_path).save(state)

    restarted = scheduler(clock, seed=99)  # a new process, another random sequence
    reloaded = StateStore(tmp_path).load("www")
    assert reloaded == state
    assert restarted.next_action(reloaded) == before
    # The same window fetched again keeps the choice.
    clock.advance(DAY)
    again = restarted.ari_fetched(reloaded, window, retry_after=60 * DAY)
    assert again.renewal == state.renewal


def test_a_changed_window_is_chosen_again():
    sched = scheduler(seed=3)
    state = with_window(sched, Window(T0 + 50 * DAY, T0 + 52 * DAY))
    moved = Window(T0 + 40 * DAY, T0 + 41 * DAY)
    state = sched.ari_fetched(state, moved, retry_after=60 * DAY)
    assert state.renewal is not None and state.renewal.window == moved
    assert moved.start <= next_action(state, T0).when < moved.end


def test_a_window_moved_into_the_past_means_renew_now():
    clock = FakeClock()
    sched = scheduler(clock)
    state = with_window(sched, Window(T0 + 50 * DAY, T0 + 52 * DAY))
    clock.advance(10 * DAY)
    past = Window(T0 - 2 * DAY, T0 - DAY)  # the CA wants it replaced (e.g. a revocation)
    state = sched.ari_fetched(state, past, retry_after=timedelta(hours=6))
    assert sched.next_action(state) == (Action.RENEW, clock.now())


def test_retry_after_is_honoured():
    clock = FakeClock()
    sched = scheduler(clock)
    window = Window(T0 + 50 * DAY, T0 + 52 * DAY)
    state = with_window(sched, window, retry=timedelta(hours=2))
    assert sched.next_action(state) == (Action.POLL_ARI, T0 + timedelta(hours=2))
    clock.advance(timedelta(hours=1, minutes=59))
    assert sched.next_action(state) == (Action.POLL_ARI, T0 + timedelta(hours=2))
    clock.advance(timedelta(minutes=5))
    assert sched.next_action(state) == (Action.POLL_ARI, clock.now())  # passed: ask now


def test_retry_after_defaults_to_six_hours_and_has_a_floor():
    sched = scheduler()
    window = Window(T0 + 50 * DAY, T0 + 52 * DAY)
    state = sched.ari_fetched(deployed_state(sched), window)
    assert next_action(state, T0) == (Action.POLL_ARI, T0 + timedelta(hours=6))
    state = sched.ari_fetched(state, window, retry_after=timedelta(seconds=1))
    assert next_action(state, T0) == (Action.POLL_ARI, T0 + timedelta(minutes=1))


def test_an_ari_failure_keeps_the_window_and_asks_again_later():
    sched = scheduler()
    window = Window(T0 + 50 * DAY, T0 + 52 * DAY)
    state = with_window(sched, window, retry=timedelta(hours=2))
    failed = sched.ari_unavailable(state)
    assert failed.renewal == state.renewal
    assert failed.ari is not None and failed.ari.window == window
    assert next_action(failed, T0) == (Action.POLL_ARI, T0 + timedelta(hours=1))


def test_without_any_ari_answer_the_lifetime_rule_applies():
    sched = scheduler(seed=5)
    state = sched.ari_unavailable(deployed_state(sched), retry_after=timedelta(days=365))
    assert state.renewal is not None and state.renewal.window is None
    assert next_action(state, T0) == (Action.RENEW, state.renewal.at)


def test_an_invalid_window_cannot_be_built():
    with pytest.raises(ValueError, match="must end after it starts"):
        Window(T0, T0)


# -- without ARI: two thirds of the lifetime ------------------------------------------------------


def test_two_thirds_of_the_lifetime_with_jitter_bounds():
    cert = certificate(days=90, ari=False)
    centre = cert.not_before + 60 * DAY
    jitter = timedelta(days=4.5)  # 5 % of 90 days
    times = set()
    for seed in range(300):
        when = next_action(deployed_state(scheduler(seed=seed), cert), T0).when
        assert centre - jitter <= when <= centre + jitter
        times.add(when)
    assert len(times) == 300
    assert min(times) < centre - 4 * DAY and max(times) > centre + 4 * DAY


def test_the_lifetime_choice_is_deterministic_given_the_random_source():
    cert = certificate(ari=False)
    first = deployed_state(scheduler(seed=11), cert)
    second = deployed_state(scheduler(seed=11), cert)
    assert first.renewal == second.renewal
    edges = [deployed_state(Scheduler(clock=FakeClock(), rng=FixedRandom(u)), cert) for u in (0, 1)]
    assert [s.renewal.at for s in edges if s.renewal] == [T0 + 55.5 * DAY, T0 + 64.5 * DAY]


def test_before_expiry_days_moves_the_renewal_earlier_only():
    sched = Scheduler(clock=FakeClock(), rng=FixedRandom(0.5))
    state = deployed_state(sched, certificate(days=90, ari=False))  # renewal at day 60
    assert next_action(state, T0, renew_before=45 * DAY).when == T0 + 45 * DAY
    assert next_action(state, T0, renew_before=10 * DAY).when == T0 + 60 * DAY


# -- failures and backoff -----------------------------------------------------------------------


def test_the_backoff_sequence_doubles_from_five_minutes_to_a_six_hour_cap():
    clock = FakeClock()
    sched = Scheduler(clock=clock, rng=FixedRandom(0.0))  # no jitter
    state = CertState("www")
    waits = []
    for _ in range(10):
        state = sched.failed(state, "connection refused")
        what, when = sched.next_action(state)
        assert what is Action.ISSUE
        waits.append((when - clock.now()) / timedelta(minutes=1))
    assert waits == [5, 10, 20, 40, 80, 160, 320, 360, 360, 360]
    assert state.status is Status.FAILED
    assert (state.failures, state.last_error) == (10, "connection refused")


def test_backoff_jitter_only_shortens_the_wait():
    policy = RenewalPolicy()
    for failures in range(1, 12):
        full = min(timedelta(minutes=5) * 2 ** (failures - 1), timedelta(hours=6))
        for seed in range(50):
            delay = backoff_delay(failures, random.Random(seed), policy)
            assert full * 0.9 <= delay <= full


def test_backoff_is_kept_across_a_restart(tmp_path: Path):
    clock = FakeClock()
    sched = scheduler(clock)
    state = deployed_state(sched, certificate(days=90, ari=False))
    clock.advance(70 * DAY)  # past the renewal time
    state = sched.failed(state, "rateLimited")
    state = sched.failed(state, "rateLimited")
    expected = sched.next_action(state)
    assert expected.what is Action.RENEW and expected.when > clock.now()
    StateStore(tmp_path).save(state)

    restarted = scheduler(clock, seed=1234)
    reloaded = StateStore(tmp_path).load("www")
    assert restarted.next_action(reloaded) == expected
    assert reloaded.status is Status.FAILED and reloaded.failures == 2


def test_success_clears_the_failures():
    sched = scheduler()
    state = sched.failed(CertState("www"), "boom")
    state = sched.issued(state, certificate())
    assert (state.failures, state.next_attempt, state.last_error) == (0, None, None)


def test_a_failed_deployment_is_retried_with_backoff():
    clock = FakeClock()
    sched = Scheduler(clock=clock, rng=FixedRandom(0.0))
    state = sched.failed(sched.issued(CertState("www"), certificate()), "reload failed")
    assert state.status is Status.ISSUED_NOT_DEPLOYED
    assert sched.next_action(state) == (Action.DEPLOY, T0 + timedelta(minutes=5))


def test_long_errors_are_truncated():
    state = scheduler().failed(CertState("www"), "x" * 5000)
    assert state.last_error is not None and len(state.last_error) == 1000


# -- persistence --------------------------------------------------------------------------------


def test_a_crash_between_writing_and_marking_deployed_redeploys(tmp_path: Path):
    state_dir, root = tmp_path / "state", tmp_path / "ssl"
    state_dir.mkdir()
    root.mkdir()
    sched = scheduler()
    states = StateStore(state_dir)
    state = sched.issued(states.load("www"), certificate())
    states.save(state)  # recorded before the files are written
    deploy({root / "cert.pem": FileSpec(b"cert", 0o644)}, roots=[root])
    # … the process dies here, before deployed() is saved.
    reloaded = StateStore(state_dir).load("www")
    assert reloaded.status is Status.ISSUED_NOT_DEPLOYED
    assert scheduler(seed=2).next_action(reloaded) == (Action.DEPLOY, T0)


def test_the_state_file_is_private_json(tmp_path: Path):
    sched = scheduler()
    state = sched.ari_fetched(deployed_state(sched), Window(T0 + 50 * DAY, T0 + 52 * DAY))
    state = sched.failed(state, "boom")
    StateStore(tmp_path).save(state)
    path = tmp_path / "www.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed" and doc["renewal"]["window"]["start"].startswith("2026-04-20")
    assert state_from_json(doc) == state


def test_every_field_round_trips_through_json():
    sched = scheduler()
    state = sched.ari_unavailable(sched.failed(deployed_state(sched), "boom"))
    assert state_from_json(state_to_json(state)) == state
    assert state_from_json(state_to_json(CertState("x"))) == CertState("x")


def test_a_missing_state_file_is_a_fresh_pending_state(tmp_path: Path):
    assert StateStore(tmp_path).load("www") == CertState("www", Status.PENDING)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "", "UPPER"])
def test_state_files_are_named_by_plain_ids_only(tmp_path: Path, name: str):
    with pytest.raises(StateError, match="is not a certificate name"):
        StateStore(tmp_path).load(name)


def test_a_corrupt_or_foreign_state_file_is_an_error(tmp_path: Path):
    (tmp_path / "www.json").write_text("{not json")
    with pytest.raises(StateError, match="is not JSON"):
        StateStore(tmp_path).load("www")
    (tmp_path / "www.json").write_text(json.dumps(state_to_json(CertState("api"))))
    with pytest.raises(StateError, match="describes 'api', not 'www'"):
        StateStore(tmp_path).load("www")
    doc = state_to_json(CertState("www")) | {"status": "exploded"}
    (tmp_path / "www.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="malformed state document"):
        StateStore(tmp_path).load("www")


def test_describe_certificate_computes_the_ari_cert_id():
    # RFC 9773 §4.1's example: keyIdentifier 69:88:5B:…:C8:D4, serial 0x87654321.
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(T0)
        .not_valid_after(T0 + 90 * DAY)
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    info = describe_certificate(cert.public_bytes(Encoding.PEM))
    assert info.ari_cert_id == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert (info.serial, info.not_before, info.not_after) == ("87654321", T0, T0 + 90 * DAY)
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert describe_certificate(cert.public_bytes(Encoding.DER)) == info


def test_precondition_ari_needs_a_certificate():
    with pytest.raises(ValueError, match="there is none"):
        scheduler().ari_fetched(CertState("www"), Window(T0, T0 + DAY))


def test_dataclass_states_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CertState("www").status = Status.DEPLOYED  # type: ignore[misc]
