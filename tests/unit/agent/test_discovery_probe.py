"""TLS probes against real loopback listeners, and the concurrency of probe runs."""

from __future__ import annotations

import errno
import hashlib
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from unit.agent.fixtures.discovery.loopback import (
    LoopbackServer,
    plain_handler,
    server_context,
    silent_handler,
    tls_handler,
)
from unit.agent.fixtures.discovery.pki import TestPKI

from certplane.agent.discovery import (
    ListeningSocket,
    ProbeOutcome,
    ProbeResult,
    ProbeRun,
    ProbeStatus,
    ProbeTarget,
    describe_certificate,
    probe_all,
    probe_host,
    probe_listeners,
    tls_probe,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    pki = TestPKI(NOW)
    directory = tmp_path_factory.mktemp("probe-certs")
    issued = {name: pki.leaf(f"{name}.test", dns=[f"{name}.test"]) for name in ("a", "b")}
    for name, leaf in issued.items():
        leaf.write(directory / f"{name}.pem", directory / f"{name}.key")
    contexts = {
        name: server_context(directory / f"{name}.pem", directory / f"{name}.key")
        for name in issued
    }
    return issued, contexts, directory


@pytest.fixture
def sni_server(certs):
    issued, contexts, _ = certs
    with LoopbackServer(
        "127.0.0.1", tls_handler(contexts["a"], {"b.test": contexts["b"]})
    ) as server:
        yield server, issued


def test_the_served_leaf_depends_on_sni(sni_server):
    server, issued = sni_server
    for sni, expected in [(None, "a"), ("a.test", "a"), ("b.test", "b"), ("other.test", "a")]:
        outcome = tls_probe(ProbeTarget("127.0.0.1", server.port, sni), 2.0)
        assert outcome == ProbeOutcome(ProbeStatus.TLS, issued[expected].der), sni


def test_ipv6_loopback(certs):
    issued, contexts, _ = certs
    try:
        server = LoopbackServer("::1", tls_handler(contexts["b"], {}))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        assert tls_probe(ProbeTarget("::1", server.port, None), 2.0).leaf_der == issued["b"].der


def test_a_plain_text_server_is_not_tls():
    with LoopbackServer("127.0.0.1", plain_handler) as server:
        assert tls_probe(ProbeTarget("127.0.0.1", server.port, None), 2.0) == ProbeOutcome(
            ProbeStatus.NOT_TLS
        )


def test_a_closed_port_is_unreachable():
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = reserved.getsockname()[1]
        outcome = tls_probe(ProbeTarget("127.0.0.1", port, None), 2.0)
    assert outcome == ProbeOutcome(
        ProbeStatus.UNREACHABLE, detail=errno.errorcode[errno.ECONNREFUSED]
    )


def test_a_silent_server_times_out():
    with LoopbackServer("127.0.0.1", silent_handler) as server:
        started = time.monotonic()
        outcome = tls_probe(ProbeTarget("127.0.0.1", server.port, None), 0.3)
    assert outcome == ProbeOutcome(ProbeStatus.TIMEOUT)
    assert time.monotonic() - started < 2


def test_a_server_that_hangs_up_is_closed():
    with LoopbackServer("127.0.0.1", lambda conn: None) as server:
        assert tls_probe(ProbeTarget("127.0.0.1", server.port, None), 2.0) == ProbeOutcome(
            ProbeStatus.CLOSED
        )


def test_an_alert_is_a_tls_error_and_sni_probes_still_follow(certs):
    issued, _, directory = certs
    strict = server_context(directory / "a.pem", directory / "a.key")
    with LoopbackServer("127.0.0.1", tls_handler(strict, {}, require_sni=True)) as server:
        sock = ListeningSocket("ipv4", "127.0.0.1", server.port)
        run = probe_listeners([sock], {sock: ("a.test",)})
    assert run.results == (
        ProbeResult(
            "127.0.0.1", server.port, None, ProbeStatus.TLS_ERROR, None, "TLSV1_UNRECOGNIZED_NAME"
        ),
        ProbeResult("127.0.0.1", server.port, "a.test", ProbeStatus.TLS, issued["a"].fingerprint),
    )


# --- runs --------------------------------------------------------------------------------------


def test_wildcard_listeners_are_probed_on_loopback():
    assert [probe_host(a) for a in ("0.0.0.0", "::", "192.0.2.1", "::1")] == [
        "127.0.0.1",
        "::1",
        "192.0.2.1",
        "::1",
    ]


def test_probe_all_bounds_concurrency_and_keeps_order():
    lock, active, peak = threading.Lock(), [0], [0]

    def slow(target: ProbeTarget, timeout: float) -> ProbeOutcome:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return ProbeOutcome(ProbeStatus.NOT_TLS, detail=f"{target.port}/{timeout}")

    targets = [ProbeTarget("127.0.0.1", port, None) for port in range(1000, 1012)]
    run = probe_all(targets, slow, timeout=0.5, concurrency=3)
    assert peak[0] == 3
    assert [r.detail for r in run.results] == [f"{port}/0.5" for port in range(1000, 1012)]


def test_a_probe_that_raises_is_an_error_and_a_bad_certificate_is_reported(certs):
    issued = certs[0]
    garbage = b"\x30\x03\x02\x01\x00"

    def fake(target: ProbeTarget, timeout: float) -> ProbeOutcome:
        if target.port == 1:
            raise RuntimeError("boom")
        if target.port == 2:
            return ProbeOutcome(ProbeStatus.TLS, garbage)
        return ProbeOutcome(ProbeStatus.TLS, issued["a"].der)

    run = probe_all([ProbeTarget("h", p, None) for p in (1, 2, 3)], fake)
    assert run == ProbeRun(
        results=(
            ProbeResult("h", 1, None, ProbeStatus.ERROR, None, "RuntimeError"),
            ProbeResult(
                "h",
                2,
                None,
                ProbeStatus.ERROR,
                hashlib.sha256(garbage).hexdigest(),
                "served certificate could not be parsed",
            ),
            ProbeResult("h", 3, None, ProbeStatus.TLS, issued["a"].fingerprint),
        ),
        certificates={issued["a"].fingerprint: describe_certificate(issued["a"].cert)},
    )


def test_sni_probes_only_where_the_first_probe_may_have_been_tls():
    seen: list[ProbeTarget] = []
    statuses = {
        1: ProbeStatus.NOT_TLS,
        2: ProbeStatus.UNREACHABLE,
        3: ProbeStatus.TIMEOUT,
        4: ProbeStatus.CLOSED,
    }

    def fake(target: ProbeTarget, timeout: float) -> ProbeOutcome:
        seen.append(target)
        return ProbeOutcome(statuses[target.port])

    sockets = [ListeningSocket("ipv4", "0.0.0.0", port) for port in (1, 2, 3, 4)]
    sockets.append(ListeningSocket("ipv4", "127.0.0.1", 4))  # probed once: same target
    probe_listeners(sockets, {sock: ("x.test", "y.test") for sock in sockets}, fake, concurrency=1)
    assert seen[:4] == [ProbeTarget("127.0.0.1", port, None) for port in (1, 2, 3, 4)]
    assert seen[4:] == [
        ProbeTarget("127.0.0.1", 4, "x.test"),
        ProbeTarget("127.0.0.1", 4, "y.test"),
    ]
