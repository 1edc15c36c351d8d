"""What the agent knows about each managed certificate, persisted as JSON in ``state_dir``.

One file per certificate (``<state_dir>/<name>.json``, mode 0600), written with
:func:`certplane.agent.store.write_atomic`, so a crash leaves the old state or the new one.
Every decision of :mod:`certplane.agent.scheduler` is a function of this state and the time, and
every random choice it makes is stored here: loading the file after a restart reproduces the same
decisions.

The record of a certificate is only written *after* its files were written and *before* it is
marked deployed; a crash in between leaves ``issued-not-deployed``, which the scheduler answers
with a new deployment.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certplane.agent.store import StoreError, read_file, write_atomic

SCHEMA_VERSION = 1
STATE_FILE_MODE = 0o600
# NOTE(names): a certificate's name is also its state file name; config.py accepts the same set.
CERTIFICATE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class StateError(Exception):
    """A state file cannot be read or does not describe the certificate asked for."""


class Status(StrEnum):
    """Where a managed certificate stands.

    ``pending``: nothing issued yet (or a new issuance was requested). ``issued-not-deployed``: a
    certificate was issued and must be (re)deployed. ``deployed``: in use. ``failed``: the last
    issuance or renewal failed; a certificate that is still deployed stays recorded.
    """

    PENDING = "pending"
    ISSUED_NOT_DEPLOYED = "issued-not-deployed"
    DEPLOYED = "deployed"
    FAILED = "failed"


@dataclass(frozen=True)
class CertificateInfo:
    """The facts about an issued certificate the agent schedules by."""

    fingerprint_sha256: str
    serial: str  # lowercase hex
    not_before: datetime
    not_after: datetime
    ari_cert_id: str | None = None  # RFC 9773 §4.1; None without an AKI keyIdentifier

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before


@dataclass(frozen=True)
class Window:
    """An ARI suggested window (RFC 9773 §4.2); ``end`` is strictly after ``start``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("an ARI window must end after it starts (RFC 9773 §4.2)")


@dataclass(frozen=True)
class AriState:
    """The last ARI answer: its window (``None`` when unavailable), when it was fetched and the
    earliest time ARI may be asked again (its Retry-After)."""

    window: Window | None
    fetched_at: datetime
    next_poll: datetime


@dataclass(frozen=True)
class RenewalChoice:
    """The renewal time chosen once, and what it was drawn from: an ARI window, or the
    certificate's lifetime when ``window`` is ``None``."""

    at: datetime
    window: Window | None = None


@dataclass(frozen=True)
class CertState:
    """Everything persisted about one managed certificate."""

    name: str
    status: Status = Status.PENDING
    certificate: CertificateInfo | None = None
    ari: AriState | None = None
    renewal: RenewalChoice | None = None
    failures: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None


# -- describing a certificate -------------------------------------------------------------------


def describe_certificate(pem_or_der: bytes) -> CertificateInfo:
    """Fingerprint, serial, validity and ARI CertID of a certificate (PEM, first one, or DER)."""
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(pem_or_der)
    return CertificateInfo(
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        ari_cert_id=ari_cert_id(cert),
    )


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER content), unpadded."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    serial = cert.serial_number
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # keeps the sign octet
    return f"{_b64url(aki.key_identifier)}.{_b64url(octets)}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- JSON ---------------------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _window_json(window: Window | None) -> dict[str, Any] | None:
    return None if window is None else {"start": _time(window.start), "end": _time(window.end)}


def state_to_json(state: CertState) -> dict[str, Any]:
    """The JSON document of ``state`` (the state file's content)."""
    cert, ari, renewal = state.certificate, state.ari, state.renewal
    return {
        "version": SCHEMA_VERSION,
        "name": state.name,
        "status": state.status.value,
        "certificate": None
        if cert is None
        else {
            "fingerprint_sha256": cert.fingerprint_sha256,
            "serial": cert.serial,
            "not_before": _time(cert.not_before),
            "not_after": _time(cert.not_after),
            "ari_cert_id": cert.ari_cert_id,
        },
        "ari": None
        if ari is None
        else {
            "window": _window_json(ari.window),
            "fetched_at": _time(ari.fetched_at),
            "next_poll": _time(ari.next_poll),
        },
        "renewal": None
        if renewal is None
        else {"at": _time(renewal.at), "window": _window_json(renewal.window)},
        "failures": state.failures,
        "next_attempt": _time(state.next_attempt),
        "last_error": state.last_error,
    }


def state_from_json(doc: Any) -> CertState:
    """Parse a state document; raises :class:`StateError` naming what is wrong."""
    try:
        return _parse_state(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"malformed state document: {type(exc).__name__}: {exc}") from exc


def _parse_state(doc: dict[str, Any]) -> CertState:
    if doc["version"] != SCHEMA_VERSION:
        raise ValueError(f"unsupported state version {doc['version']!r}")
    return CertState(
        name=_str(doc["name"]),
        status=Status(doc["status"]),
        certificate=_parse_certificate(doc["certificate"]),
        ari=_parse_ari(doc["ari"]),
        renewal=_parse_renewal(doc["renewal"]),
        failures=_int(doc["failures"]),
        next_attempt=_parse_time(doc["next_attempt"]),
        last_error=None if doc["last_error"] is None else _str(doc["last_error"]),
    )


def _parse_certificate(doc: dict[str, Any] | None) -> CertificateInfo | None:
    if doc is None:
        return None
    cert_id = doc["ari_cert_id"]
    return CertificateInfo(
        fingerprint_sha256=_str(doc["fingerprint_sha256"]),
        serial=_str(doc["serial"]),
        not_before=_required_time(doc["not_before"]),
        not_after=_required_time(doc["not_after"]),
        ari_cert_id=None if cert_id is None else _str(cert_id),
    )


def _parse_ari(doc: dict[str, Any] | None) -> AriState | None:
    if doc is None:
        return None
    return AriState(
        window=_parse_window(doc["window"]),
        fetched_at=_required_time(doc["fetched_at"]),
        next_poll=_required_time(doc["next_poll"]),
    )


def _parse_renewal(doc: dict[str, Any] | None) -> RenewalChoice | None:
    if doc is None:
        return None
    return RenewalChoice(at=_required_time(doc["at"]), window=_parse_window(doc["window"]))


def _parse_window(doc: dict[str, Any] | None) -> Window | None:
    if doc is None:
        return None
    return Window(_required_time(doc["start"]), _required_time(doc["end"]))


def _parse_time(text: Any) -> datetime | None:
    return None if text is None else _required_time(text)


def _required_time(text: Any) -> datetime:
    value = datetime.fromisoformat(_str(text))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return value.astimezone(UTC)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


# -- the files ----------------------------------------------------------------------------------


class StateStore:
    """Loads and saves :class:`CertState` files in one directory (the store's only root)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def path_for(self, name: str) -> Path:
        """The state file of certificate ``name``; refuses a name that is not a plain id."""
        if not CERTIFICATE_NAME.fullmatch(name):
            raise StateError(f"{name!r} is not a certificate name")
        return self.state_dir / f"{name}.json"

    def load(self, name: str) -> CertState:
        """The saved state of ``name``, or a fresh ``pending`` state when there is none."""
        path = self.path_for(name)
        try:
            raw = read_file(path, roots=[self.state_dir])
        except StoreError as exc:
            raise StateError(str(exc)) from exc
        if raw is None:
            return CertState(name)
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise StateError(f"{path} is not JSON: {exc}") from exc
        state = state_from_json(doc)
        if state.name != name:
            raise StateError(f"{path} describes {state.name!r}, not {name!r}")
        return state

    def save(self, state: CertState) -> None:
        """Write ``state`` atomically (mode 0600); raises StateError when it cannot."""
        data = json.dumps(state_to_json(state), indent=2, sort_keys=True).encode() + b"\n"
        try:
            write_atomic(
                self.path_for(state.name), data, mode=STATE_FILE_MODE, roots=[self.state_dir]
            )
        except StoreError as exc:
            raise StateError(str(exc)) from exc
