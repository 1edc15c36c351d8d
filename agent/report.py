"""Inventory reports to certplane: what this host holds and what the agent did to it.

A report is one signed account POST (RFC 8555 §6.2, the account key: no second credential) to
the directory's ``meta.certplaneInventory``, holding the host's whole snapshot (each report
replaces the previous one of this account and host on the server) and the lifecycle events
queued since the last report that got through (``deployed``, ``renewed``, ``failed``).

Reporting is best effort: the engine's ``report`` hook only queues an event (persisted in the
state directory, so a restart keeps it), and :meth:`InventoryReporter.flush` sends at the end
of each pass; a report that fails is logged and the events go with the next one. Nothing here
ever fails a deployment.

Item dicts are the wire format of ``server/ra/inventory_report.py`` (its bounds apply); the
items of the managed certificates are built here, discovery's are passed in as dicts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from certplane.agent.acme_flow import AcmeFailure
from certplane.agent.config import AgentConfig, CertificateSettings
from certplane.agent.deploy import endpoints_of
from certplane.agent.discovery import DiscoveryReport
from certplane.agent.scheduler import Clock
from certplane.agent.state import CertState, StateError, StateStore, Status
from certplane.agent.store import StoreError, read_file, write_atomic

log = logging.getLogger(__name__)

# The server's bounds (server/ra/inventory_report.py): a report never exceeds them.
MAX_ITEMS = 2000
MAX_EVENTS = 200
MAX_SANS = 100
MAX_DN = 1024
MAX_DETAIL = 2048
MAX_LOCATIONS = 32
QUEUE_FILE = "report-queue.json"
# What the engine's hook reports, as the wire's event type; "issued" is the CA's own record.
WIRE_EVENTS = {"deployed": "deployed", "renewed": "renewed", "failed": "failed"}
_SIGNATURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NIST_CURVES = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}

Item = dict[str, Any]
WireEvent = dict[str, Any]


class SignedPoster(Protocol):
    """What sends a report: an ACME session of the enrolled account (``AcmeSession``)."""

    @property
    def inventory_url(self) -> str | None: ...

    def post_json(self, url: str, payload: dict[str, object]) -> dict[str, object]: ...


def report_inventory(
    session: SignedPoster,
    url: str,
    host: str,
    items: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
) -> dict[str, object]:
    """POST one report to ``url`` signed with the account key; the server's summary.

    Raises AcmeFailure when the server refuses it (a problem document) or is unreachable.
    """
    payload: dict[str, object] = {
        "host": host,
        "items": [dict(item) for item in items],
        "events": [dict(event) for event in events],
    }
    return session.post_json(url, payload)


def host_name() -> str:
    """This host as reports name it: its host name, lowercase."""
    return socket.gethostname().lower() or "localhost"


# --- items ------------------------------------------------------------------------------------


def certificate_item(
    pem_or_der: bytes, *, managed: bool, locations: Sequence[Mapping[str, Any]]
) -> Item:
    """The report item of a certificate (PEM, its first certificate, or DER)."""
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(pem_or_der)
    return {
        "fingerprint": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        "subject": cert.subject.rfc4514_string()[:MAX_DN],
        "sans": _sans(cert)[:MAX_SANS],
        "issuer": cert.issuer.rfc4514_string()[:MAX_DN],
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "key_type": key_type(cert.public_key()),
        "signature_algorithm": _signature_algorithm(cert),
        "managed": managed,
        "locations": [dict(location) for location in locations],
    }


def key_type(public_key: object) -> str:
    """``rsa-2048``, ``ec-p256``, ``ed25519``… (the vocabulary of the agent's key types)."""
    if isinstance(public_key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        family = "rsa" if isinstance(public_key, rsa.RSAPublicKey) else "dsa"
        return f"{family}-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = public_key.curve.name
        return f"ec-{_NIST_CURVES.get(name, name)}"[:32]
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    return "unknown"


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return [name.lower() for name in san.get_values_for_type(x509.DNSName)] + ips


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = oid._name  # e.g. "sha256WithRSAEncryption", "ecdsa-with-SHA256"
    return name if _SIGNATURE_NAME.fullmatch(name) else oid.dotted_string


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def managed_items(config: AgentConfig, states: StateStore) -> list[Item]:
    """An item for each managed certificate's deployed file (what the host holds now).

    Its verify endpoints are listed as served only when the last deployment of that very
    certificate was proven (status ``deployed``); otherwise what they serve is not known here.
    """
    items = []
    for settings in config.certificates:
        item = _managed_item(settings, config.agent.roots, _state(states, settings.name))
        if item is not None:
            items.append(item)
    return items


def _state(states: StateStore, name: str) -> CertState:
    try:
        return states.load(name)
    except StateError:
        return CertState(name)


def _managed_item(
    settings: CertificateSettings, roots: Sequence[Path], state: CertState
) -> Item | None:
    files = settings.deploy.files()
    roles = [role for role in ("cert", "fullchain") if role in files]
    if not roles:
        return None
    try:
        data = read_file(files[roles[0]], roots=roots)
        item = certificate_item(data, managed=True, locations=()) if data else None
    except (StoreError, ValueError):
        return None
    if item is None:
        return None
    locations: list[dict[str, Any]] = [
        {"kind": "file", "path": str(files[role]), "index": 0} for role in roles
    ]
    deployed = state.certificate if state.status is Status.DEPLOYED else None
    proven = deployed is not None and deployed.fingerprint_sha256 == item["fingerprint"]
    if proven:
        locations += [
            {"kind": "endpoint", "host": e.host, "port": e.port, "sni": e.sni, "served": True}
            for e in endpoints_of(settings)
        ]
    item["locations"] = locations
    return item


def merge_items(*groups: Iterable[Mapping[str, Any]]) -> list[Item]:
    """One item per fingerprint: managed if any says so, with every location (once)."""
    merged: dict[str, Item] = {}
    for group in groups:
        for item in group:
            fingerprint = str(item["fingerprint"]).lower()
            known = merged.get(fingerprint)
            if known is None:
                merged[fingerprint] = {**item, "locations": list(item.get("locations", ()))}
                continue
            known["managed"] = bool(known.get("managed")) or bool(item.get("managed"))
            for location in item.get("locations", ()):
                if location not in known["locations"]:
                    known["locations"].append(location)
    return list(merged.values())[:MAX_ITEMS]


# --- events -----------------------------------------------------------------------------------


class ReportQueue:
    """Events not yet reported, kept in ``state_dir`` (mode 0600), oldest first; at most
    MAX_EVENTS (the oldest are dropped beyond it)."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._path = state_dir / QUEUE_FILE

    def load(self) -> list[WireEvent]:
        try:
            raw = read_file(self._path, roots=[self._dir])
            events = json.loads(raw) if raw else []
        except (StoreError, ValueError) as exc:
            log.warning("report queue %s unreadable, starting empty: %s", self._path, exc)
            return []
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    def push(self, event: WireEvent) -> None:
        events = [*self.load(), event]
        if len(events) > MAX_EVENTS:
            log.warning("report queue full: dropping %d old events", len(events) - MAX_EVENTS)
        self._save(events[-MAX_EVENTS:])

    def drop(self, count: int) -> None:
        """Forget the ``count`` oldest events (they were reported)."""
        self._save(self.load()[count:])

    def _save(self, events: list[WireEvent]) -> None:
        data = json.dumps(events, indent=1).encode() + b"\n"
        write_atomic(self._path, data, mode=0o600, roots=[self._dir])


class InventoryReporter:
    """The engine's ``Reporter``: each call queues one lifecycle event; :meth:`flush` sends
    the queue with the host's snapshot."""

    def __init__(self, queue: ReportQueue, clock: Clock, host: str | None = None) -> None:
        self.queue = queue
        self._clock = clock
        self.host = host or host_name()

    def __call__(
        self, event: str, settings: CertificateSettings, state: CertState, detail: str
    ) -> None:
        """Queue ``event`` about ``settings``'s certificate (``state`` after the event)."""
        wire_type = WIRE_EVENTS.get(event)
        if wire_type is None:
            return
        fingerprint = state.certificate.fingerprint_sha256 if state.certificate else None
        try:
            self.queue.push(
                {
                    "type": wire_type,
                    "certificate": fingerprint,
                    "name": settings.name,
                    "detail": detail[:MAX_DETAIL],
                    "at": _iso(self._clock.now()),
                }
            )
        except StoreError as exc:
            log.warning("cannot queue the %s event of %s: %s", event, settings.name, exc)

    def flush(self, session: SignedPoster, items: Sequence[Mapping[str, Any]]) -> bool:
        """Send the snapshot and the queued events; True once the server took them.

        A CA that offers no inventory URL gets nothing (and the queue is emptied); a failed
        report keeps the queue for the next one.
        """
        url = session.inventory_url
        events = self.queue.load()
        if url is None:
            if events:
                log.info("the CA takes no inventory reports: %d events dropped", len(events))
                self.queue.drop(len(events))
            return False
        try:
            report_inventory(session, url, self.host, items, events)
        except AcmeFailure as exc:
            log.warning("inventory report failed (retried next pass): %s", exc)
            return False
        self.queue.drop(len(events))
        return True


# --- discovery -------------------------------------------------------------------------------


def discovered_items(report: DiscoveryReport) -> list[Item]:
    """Report items for what discovery found: files, configuration directives, and where a
    probe saw each certificate served (``managed`` false; the managed ones are merged in)."""
    items = []
    for record in report.certificates:
        cert = record.certificate
        locations: list[Item] = [
            {"kind": "file", "path": f.path, "index": f.index} for f in record.files
        ]
        locations += [
            {
                "kind": "config",
                "config_file": c.config_file,
                "line": c.line,
                "directive": c.directive,
                "path": c.path,
                "server_names": list(c.server_names)[:MAX_SANS],
                **({"served": c.served} if c.served is not None else {}),
            }
            for c in record.configured
        ]
        locations += [
            {"kind": "endpoint", "host": s.host, "port": s.port, "sni": s.sni, "served": True}
            for s in record.served
        ]
        items.append(
            {
                "fingerprint": cert.fingerprint,
                "subject": cert.subject[:MAX_DN],
                "sans": [*cert.dns_names, *cert.ip_addresses][:MAX_SANS],
                "issuer": cert.issuer[:MAX_DN],
                "not_before": _iso(cert.not_before),
                "not_after": _iso(cert.not_after),
                "key_type": cert.key_type,
                "managed": False,
                "locations": locations[:MAX_LOCATIONS],
            }
        )
    return items[:MAX_ITEMS]
