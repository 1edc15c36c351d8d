"""TLS probes of listening ports: which leaf certificate is served for which SNI.

A probe function takes a :class:`~certplane.agent.discovery.model.ProbeTarget` and a timeout and
returns a :class:`~certplane.agent.discovery.model.ProbeOutcome`; :func:`tls_probe` is the real
one, tests may inject another. :func:`probe_listeners` first probes every listening socket
without SNI, then, on sockets that spoke TLS (or closed on us, as servers requiring SNI do), once
per configured name, running at most ``concurrency`` probes at a time in threads.

Certificates are never verified: the probe only wants to see what is served.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from certplane.agent.discovery.certfiles import describe_der
from certplane.agent.discovery.hostfs import errno_name
from certplane.agent.discovery.model import (
    CertificateInfo,
    ListeningSocket,
    ProbeOutcome,
    ProbeResult,
    ProbeStatus,
    ProbeTarget,
)

DEFAULT_TIMEOUT = 2.0
DEFAULT_CONCURRENCY = 16
ProbeFunction = Callable[[ProbeTarget, float], ProbeOutcome]
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - matched, never bound
# OpenSSL reasons for bytes that are no TLS record (a plain-text protocol answered)
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LENGTH_MISMATCH",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
    }
)
_NO_SNI_PROBES = frozenset({ProbeStatus.NOT_TLS, ProbeStatus.UNREACHABLE, ProbeStatus.TIMEOUT})


@dataclass(frozen=True)
class ProbeRun:
    """Every probe result, and the served certificates by fingerprint."""

    results: tuple[ProbeResult, ...] = ()
    certificates: Mapping[str, CertificateInfo] = field(default_factory=dict)


def probe_host(address: str) -> str:
    """Where to connect for a socket bound to ``address``: loopback for the wildcards."""
    return _LOOPBACK.get(address, address)


def tls_probe(target: ProbeTarget, timeout: float) -> ProbeOutcome:
    """One TLS handshake to ``target`` (SNI only when ``target.sni`` is set).

    ``timeout`` bounds the connection and each read and write of the handshake.
    """
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=timeout) as sock,
            _client_context().wrap_socket(sock, server_hostname=target.sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except TimeoutError:
        return ProbeOutcome(ProbeStatus.TIMEOUT)
    except ssl.SSLError as exc:
        return _handshake_failure(exc)
    except ConnectionRefusedError as exc:
        return ProbeOutcome(ProbeStatus.UNREACHABLE, detail=errno_name(exc))
    except ConnectionError:
        return ProbeOutcome(ProbeStatus.CLOSED)
    except OSError as exc:
        return ProbeOutcome(ProbeStatus.UNREACHABLE, detail=errno_name(exc))
    if der is None:
        return ProbeOutcome(ProbeStatus.TLS_ERROR, detail="no certificate")
    return ProbeOutcome(ProbeStatus.TLS, leaf_der=der)


def probe_all(
    targets: Sequence[ProbeTarget],
    probe: ProbeFunction = tls_probe,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ProbeRun:
    """Run ``probe`` on every target, at most ``concurrency`` at a time; results keep the order
    of ``targets``. A probe function that raises yields status ``error``."""
    if not targets:
        return ProbeRun()
    workers = max(1, min(concurrency, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tls-probe") as pool:
        outcomes = list(pool.map(lambda target: _guarded(probe, target, timeout), targets))
    certificates: dict[str, CertificateInfo] = {}
    results = tuple(_result(t, o, certificates) for t, o in zip(targets, outcomes, strict=True))
    return ProbeRun(results, certificates)


def probe_listeners(
    sockets: Sequence[ListeningSocket],
    names: Mapping[ListeningSocket, Sequence[str]],
    probe: ProbeFunction = tls_probe,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ProbeRun:
    """Probe each socket without SNI, then with each of ``names[socket]`` where it may help."""
    hosts = {sock: ProbeTarget(probe_host(sock.address), sock.port, None) for sock in sockets}
    first = probe_all(
        list(dict.fromkeys(hosts.values())), probe, timeout=timeout, concurrency=concurrency
    )
    status = {(r.host, r.port): r.status for r in first.results}
    second_targets = [
        ProbeTarget(target.host, target.port, name)
        for sock, target in hosts.items()
        if status[target.host, target.port] not in _NO_SNI_PROBES
        for name in names.get(sock, ())
    ]
    second = probe_all(
        list(dict.fromkeys(second_targets)), probe, timeout=timeout, concurrency=concurrency
    )
    certificates = {**first.certificates, **second.certificates}
    return ProbeRun(first.results + second.results, certificates)


def _guarded(probe: ProbeFunction, target: ProbeTarget, timeout: float) -> ProbeOutcome:
    try:
        return probe(target, timeout)
    except Exception as exc:  # an injected probe must not take discovery down
        return ProbeOutcome(ProbeStatus.ERROR, detail=type(exc).__name__)


def _result(
    target: ProbeTarget, outcome: ProbeOutcome, certificates: dict[str, CertificateInfo]
) -> ProbeResult:
    """The recorded result; a served certificate is parsed and kept in ``certificates``."""
    status, detail, fingerprint = outcome.status, outcome.detail, None
    if outcome.leaf_der is not None:
        fingerprint = hashlib.sha256(outcome.leaf_der).hexdigest()
        try:
            certificates[fingerprint] = describe_der(outcome.leaf_der)
        except ValueError:
            status, detail = ProbeStatus.ERROR, "served certificate could not be parsed"
    return ProbeResult(target.host, target.port, target.sni, status, fingerprint, detail)


def _client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate and as many servers as OpenSSL allows."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def _handshake_failure(exc: ssl.SSLError) -> ProbeOutcome:
    """Closed without an answer, bytes that are not TLS, or a TLS failure (an alert)."""
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ProbeOutcome(ProbeStatus.CLOSED)
    if exc.reason in _NOT_TLS_REASONS:
        return ProbeOutcome(ProbeStatus.NOT_TLS)
    return ProbeOutcome(ProbeStatus.TLS_ERROR, detail=exc.reason or type(exc).__name__)
