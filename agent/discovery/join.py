"""The join: files, configurations and probes combined into one inventory with findings.

:func:`build_report` is pure: it takes what the collectors observed (:class:`Observations`) and
derives the report. Its rules:

1. Every certificate read from a file (scanned or named by a configuration) or seen served is
   one :class:`~certplane.agent.discovery.report.CertificateRecord`, keyed by fingerprint.
2. Each certificate or chain directive adds a ``configured`` entry per certificate in its file;
   the first certificate of a certificate directive is the ``leaf``, the rest ``chain``.
3. A leaf is ``served`` when a completed handshake on a socket its server listens on with TLS,
   sent with one of the server's SNI names (or without SNI when the server is that socket's
   default), returned it (see :mod:`~certplane.agent.discovery.matching`).
4. ``configured-but-not-served`` is reported for a server's leaves when such handshakes
   happened and none of them returned any of the server's leaves (a server may hold an RSA and
   an ECDSA certificate; the handshake shows one).
5. Referenced files that are absent give ``missing-file``; present but yielding no certificate,
   ``unreadable``; unresolvable paths, ``unresolvable-path``. Key files are only checked for
   existence, never read.
6. Per certificate: ``expired`` (``notAfter`` before ``now``), else ``expires-soon`` (before
   ``now + expires_soon``); ``self-signed`` for a self-signed certificate that is not a CA;
   ``weak-key`` by :func:`~certplane.agent.discovery.certfiles.weak_key_reason`.
7. Every list is sorted (see the sort keys below); identical findings are reported once.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from certplane.agent.discovery.certfiles import CertificateFileScan, weak_key_reason
from certplane.agent.discovery.matching import default_servers, listen_covers, sni_names
from certplane.agent.discovery.model import (
    CertificateInfo,
    CertReference,
    FoundCertificate,
    ListeningSocket,
    ProbeResult,
    ProbeStatus,
    ServerConfig,
    SkippedFile,
    SkipReason,
    VirtualServer,
)
from certplane.agent.discovery.probe import ProbeRun, probe_host
from certplane.agent.discovery.procnet import ListenerScan
from certplane.agent.discovery.report import (
    CertificateRecord,
    ConfiguredAt,
    DiscoveryReport,
    FileLocation,
    Finding,
    FindingCode,
    ServedAt,
    iso_utc,
)

DEFAULT_EXPIRES_SOON = timedelta(days=30)


@dataclass(frozen=True)
class Observations:
    """What the collectors saw on a host.

    ``referenced`` maps every certificate and chain file named by a configuration to what
    reading it gave; ``present_keys`` holds the key files named by a configuration that exist.
    """

    now: datetime
    scan: CertificateFileScan
    configs: tuple[ServerConfig, ...]
    referenced: Mapping[str, CertificateFileScan]
    present_keys: frozenset[str]
    listeners: ListenerScan
    probes: ProbeRun


def build_report(
    observed: Observations, expires_soon: timedelta = DEFAULT_EXPIRES_SOON
) -> DiscoveryReport:
    """The report for ``observed`` (see the module docstring for the rules)."""
    inventory = _Inventory()
    for found in _all_found(observed):
        inventory.add_file(found)
    for info in observed.probes.certificates.values():
        inventory.add(info)
    findings: set[Finding] = set()
    judge = _ServedJudge(observed)
    for server in (s for config in observed.configs for s in config.servers):
        findings.update(_configured(server, observed, judge, inventory))
    for result in _handshakes(observed.probes.results):
        inventory.add_served(result)
    for info in inventory.infos.values():
        findings.update(certificate_findings(info, observed.now, expires_soon))
    return DiscoveryReport(
        generated_at=observed.now,
        certificates=inventory.records(),
        findings=tuple(sorted(findings, key=_finding_key)),
        configs=observed.configs,
        sockets=observed.listeners.sockets,
        probes=tuple(sorted(observed.probes.results, key=_probe_key)),
        skipped=tuple(sorted(set(_all_skipped(observed)), key=_skipped_key)),
        errors=observed.listeners.errors,
    )


def certificate_findings(
    info: CertificateInfo, now: datetime, expires_soon: timedelta = DEFAULT_EXPIRES_SOON
) -> list[Finding]:
    """Findings about the certificate itself, wherever it was found (rule 6)."""
    found: list[tuple[str, str]] = []
    if info.not_after < now:
        found.append((FindingCode.EXPIRED, f"notAfter {iso_utc(info.not_after)}"))
    elif info.not_after < now + expires_soon:
        found.append((FindingCode.EXPIRES_SOON, f"notAfter {iso_utc(info.not_after)}"))
    if info.self_signed and not info.is_ca:
        found.append((FindingCode.SELF_SIGNED, ""))
    weak = weak_key_reason(info.key_type)
    if weak is not None:
        found.append((FindingCode.WEAK_KEY, weak))
    return [Finding(code, info.fingerprint, None, None, None, detail) for code, detail in found]


@dataclass
class _Inventory:
    """Certificates by fingerprint and the places they were met, as the join goes."""

    infos: dict[str, CertificateInfo] = field(default_factory=dict)
    files: defaultdict[str, set[FileLocation]] = field(default_factory=lambda: defaultdict(set))
    configured: defaultdict[str, list[ConfiguredAt]] = field(
        default_factory=lambda: defaultdict(list)
    )
    served: defaultdict[str, set[ServedAt]] = field(default_factory=lambda: defaultdict(set))

    def add(self, info: CertificateInfo) -> None:
        """Know ``info`` (the first description of a fingerprint wins; they are equal)."""
        self.infos.setdefault(info.fingerprint, info)

    def add_file(self, found: FoundCertificate) -> None:
        """A certificate read from a file."""
        self.add(found.info)
        self.files[found.info.fingerprint].add(FileLocation(found.path, found.index))

    def add_served(self, result: ProbeResult) -> None:
        """A completed handshake that returned the certificate."""
        assert result.fingerprint is not None
        self.served[result.fingerprint].add(ServedAt(result.host, result.port, result.sni))

    def records(self) -> tuple[CertificateRecord, ...]:
        """Every certificate by fingerprint, each list inside sorted."""
        return tuple(self._record(fingerprint) for fingerprint in sorted(self.infos))

    def _record(self, fingerprint: str) -> CertificateRecord:
        return CertificateRecord(
            certificate=self.infos[fingerprint],
            files=tuple(sorted(self.files[fingerprint], key=lambda f: (f.path, f.index))),
            configured=tuple(sorted(set(self.configured[fingerprint]), key=_configured_key)),
            served=tuple(sorted(self.served[fingerprint], key=_served_key)),
        )


class _ServedJudge:
    """Which completed handshakes tell whether a server's leaf is served (rule 3)."""

    def __init__(self, observed: Observations) -> None:
        self.servers = [s for config in observed.configs for s in config.servers]
        self.sockets: defaultdict[tuple[str, int], list[ListeningSocket]] = defaultdict(list)
        for sock in observed.listeners.sockets:
            self.sockets[probe_host(sock.address), sock.port].append(sock)
        self.handshakes = list(_handshakes(observed.probes.results))

    def relevant(self, server: VirtualServer) -> list[ProbeResult]:
        """Handshakes that reached ``server``, in probe order."""
        return [r for r in self.handshakes if self._reached(server, r)]

    def _reached(self, server: VirtualServer, result: ProbeResult) -> bool:
        covered = [
            sock
            for sock in self.sockets[result.host, result.port]
            if any(a.ssl and listen_covers(a, sock) for a in server.listen)
        ]
        if result.sni is not None:
            return bool(covered) and result.sni in sni_names(server)
        return any(server in default_servers(self.servers, sock) for sock in covered)


def _configured(
    server: VirtualServer, observed: Observations, judge: _ServedJudge, inventory: _Inventory
) -> list[Finding]:
    """Record the server's references in the inventory; findings about them (rules 2-5)."""
    findings: list[Finding] = []
    relevant = judge.relevant(server)
    leaves: list[tuple[CertReference, FoundCertificate, bool | None]] = []
    for ref in server.references:
        problem = _reference_problem(ref, observed)
        if problem is not None:
            findings.append(problem)
            continue
        for found in observed.referenced.get(ref.path or "", CertificateFileScan()).found:
            entry = _configured_at(server, ref, found, relevant)
            inventory.configured[found.info.fingerprint].append(entry)
            if entry.role == "leaf":
                leaves.append((ref, found, entry.served))
    return findings + _not_served(leaves, relevant)


def _reference_problem(ref: CertReference, observed: Observations) -> Finding | None:
    """Why a reference cannot be followed (rule 5), or None."""
    if ref.path is None:
        detail = f"{ref.directive} {ref.value}: {ref.unresolved}"
        return Finding(FindingCode.UNRESOLVABLE_PATH, None, None, ref.file, ref.line, detail)
    if ref.role == "key":
        if ref.path in observed.present_keys:
            return None
        return Finding(FindingCode.MISSING_FILE, None, ref.path, ref.file, ref.line, ref.directive)
    scan = observed.referenced.get(ref.path, CertificateFileScan())
    if scan.found:
        return None
    reasons = [s.reason for s in scan.skipped] or [SkipReason.MISSING]
    code = FindingCode.MISSING_FILE if reasons == [SkipReason.MISSING] else FindingCode.UNREADABLE
    detail = ref.directive if code == FindingCode.MISSING_FILE else f"{ref.directive}: {reasons[0]}"
    return Finding(code, None, ref.path, ref.file, ref.line, detail)


def _configured_at(
    server: VirtualServer,
    ref: CertReference,
    found: FoundCertificate,
    relevant: list[ProbeResult],
) -> ConfiguredAt:
    leaf = ref.role == "certificate" and found.index == 0
    served = None
    if leaf and relevant:
        served = any(r.fingerprint == found.info.fingerprint for r in relevant)
    return ConfiguredAt(
        software=server.software,
        config_file=ref.file,
        line=ref.line,
        directive=ref.directive,
        role="leaf" if leaf else "chain",
        path=found.path,
        index=found.index,
        server_names=server.server_names,
        listen=server.listen,
        served=served,
    )


def _not_served(
    leaves: list[tuple[CertReference, FoundCertificate, bool | None]],
    relevant: list[ProbeResult],
) -> list[Finding]:
    """Rule 4: findings for a server none of whose leaves its handshakes returned."""
    if not relevant or any(served for _, _, served in leaves):
        return []
    findings = []
    for ref, found, _ in leaves:
        other = relevant[0]
        detail = f"{_host_port(other)} sni {other.sni or '(none)'} serves {other.fingerprint}"
        code = FindingCode.CONFIGURED_BUT_NOT_SERVED
        findings.append(
            Finding(code, found.info.fingerprint, found.path, ref.file, ref.line, detail)
        )
    return findings


def _all_found(observed: Observations) -> Iterable[FoundCertificate]:
    yield from observed.scan.found
    for scan in observed.referenced.values():
        yield from scan.found


def _all_skipped(observed: Observations) -> Iterable[SkippedFile]:
    yield from observed.scan.skipped
    for scan in observed.referenced.values():
        yield from scan.skipped


def _handshakes(results: Iterable[ProbeResult]) -> Iterable[ProbeResult]:
    return (r for r in results if r.status == ProbeStatus.TLS and r.fingerprint is not None)


def _host_port(result: ProbeResult) -> str:
    host = f"[{result.host}]" if ":" in result.host else result.host
    return f"{host}:{result.port}"


def _host_key(host: str) -> tuple[int, int, str]:
    """IPv4 before IPv6 in numeric order, then host names."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (9, 0, host)
    return (address.version, int(address), "")


def _probe_key(result: ProbeResult) -> tuple[tuple[int, int, str], int, str]:
    return (_host_key(result.host), result.port, result.sni or "")


def _served_key(served: ServedAt) -> tuple[tuple[int, int, str], int, str]:
    return (_host_key(served.host), served.port, served.sni or "")


def _configured_key(entry: ConfiguredAt) -> tuple[str, str, int, str, int, tuple[str, ...]]:
    return (
        entry.software,
        entry.config_file,
        entry.line,
        entry.path,
        entry.index,
        entry.server_names,
    )


def _finding_key(finding: Finding) -> tuple[str, str, str, str, int, str]:
    return (
        finding.code,
        finding.fingerprint or "",
        finding.path or "",
        finding.file or "",
        finding.line or 0,
        finding.detail,
    )


def _skipped_key(skipped: SkippedFile) -> tuple[str, int, str]:
    return (skipped.path, -1 if skipped.index is None else skipped.index, skipped.reason)
