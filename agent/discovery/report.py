"""The discovery report: every certificate by fingerprint with the places it was found, and
findings about them. Built by :func:`certplane.agent.discovery.join.build_report`.

The report is plain data. :meth:`DiscoveryReport.to_dict` turns it into JSON types (datetimes as
ISO 8601 UTC with ``Z``, tuples as lists, dataclasses as objects with their field names);
:meth:`DiscoveryReport.to_json` renders that. Every list is in a deterministic order, so two
discoveries of the same host give byte-identical JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from certplane.agent.discovery.model import (
    CertificateInfo,
    ListenAddress,
    ListeningSocket,
    ParseError,
    ProbeResult,
    ServerConfig,
    SkippedFile,
    Software,
)


class FindingCode:
    """What a finding is about (closed vocabulary).

    - ``configured-but-not-served``: a configuration names this certificate, but its port
      serves another one for the configured names (renewed on disk, server not reloaded?).
    - ``missing-file``: a configured certificate, chain or key file does not exist.
    - ``unreadable``: a configured certificate or chain file exists but yields no certificate.
    - ``unresolvable-path``: a configured path depends on the request (nginx variables) or
      lives outside the filesystem, so it cannot be checked.
    - ``expired`` / ``expires-soon``: ``notAfter`` is past, or within the threshold.
    - ``self-signed``: a certificate that is not a CA signed itself.
    - ``weak-key``: RSA or DSA below 2048 bits, EC below 256 bits.
    """

    CONFIGURED_BUT_NOT_SERVED = "configured-but-not-served"
    MISSING_FILE = "missing-file"
    UNREADABLE = "unreadable"
    UNRESOLVABLE_PATH = "unresolvable-path"
    EXPIRED = "expired"
    EXPIRES_SOON = "expires-soon"
    SELF_SIGNED = "self-signed"
    WEAK_KEY = "weak-key"


@dataclass(frozen=True)
class FileLocation:
    """A file holding the certificate; ``index`` is its position among the file's certificates."""

    path: str
    index: int


@dataclass(frozen=True)
class ConfiguredAt:
    """A configuration directive naming a file that holds the certificate.

    ``role`` is ``leaf`` for the first certificate of a certificate directive's file (what the
    server presents) and ``chain`` otherwise. ``served`` is only judged for leaves: True when a
    probe of the server's TLS port, with one of its names as SNI (or without SNI if it is the
    port's default server), saw this certificate; False when such probes saw only others; None
    when no such probe completed a handshake.
    """

    software: Software
    config_file: str
    line: int
    directive: str
    role: Literal["leaf", "chain"]
    path: str
    index: int
    server_names: tuple[str, ...]
    listen: tuple[ListenAddress, ...]
    served: bool | None


@dataclass(frozen=True)
class ServedAt:
    """A probe that saw the certificate as the served leaf."""

    host: str
    port: int
    sni: str | None


@dataclass(frozen=True)
class CertificateRecord:
    """One certificate and every place discovery met it."""

    certificate: CertificateInfo
    files: tuple[FileLocation, ...]
    configured: tuple[ConfiguredAt, ...]
    served: tuple[ServedAt, ...]


@dataclass(frozen=True)
class Finding:
    """Something worth acting on; ``code`` is a :class:`FindingCode` value. ``fingerprint``
    names the certificate, ``path`` the file, ``file``/``line`` the configuration directive,
    whichever apply."""

    code: str
    fingerprint: str | None
    path: str | None
    file: str | None
    line: int | None
    detail: str


@dataclass(frozen=True)
class DiscoveryReport:
    """Everything discovery saw on a host at ``generated_at``.

    ``configs`` holds each web server found (with its parse errors); ``sockets`` and ``probes``
    the listening sockets and handshakes; ``skipped`` the files that yielded no certificate;
    ``errors`` the /proc lines that could not be parsed.
    """

    generated_at: datetime
    certificates: tuple[CertificateRecord, ...]
    findings: tuple[Finding, ...]
    configs: tuple[ServerConfig, ...]
    sockets: tuple[ListeningSocket, ...]
    probes: tuple[ProbeResult, ...]
    skipped: tuple[SkippedFile, ...]
    errors: tuple[ParseError, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON types."""
        result = to_jsonable(self)
        assert isinstance(result, dict)
        return result

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def iso_utc(moment: datetime) -> str:
    """``2030-01-02T03:04:05Z``: ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_jsonable(value: object) -> object:
    """``value`` with dataclasses as dicts, tuples as lists and datetimes as ISO 8601 UTC."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    return value
