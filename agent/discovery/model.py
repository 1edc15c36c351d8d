"""The values discovery passes between its stages: certificates, configurations, sockets, probes.

Every value is a frozen dataclass holding only primitives, tuples and datetimes, so a report built
from them serialises to JSON without custom hooks (see :mod:`certplane.agent.discovery.report`).
Paths are *host* paths (``/etc/nginx/nginx.conf``) even when the files were read from a fixture
tree: :class:`~certplane.agent.discovery.hostfs.HostRoot` maps between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Software = Literal["nginx", "apache"]
ReferenceRole = Literal["certificate", "key", "chain"]
Family = Literal["ipv4", "ipv6"]


class SkipReason:
    """Why a file yielded no certificate (closed vocabulary)."""

    MISSING = "missing"
    NOT_A_REGULAR_FILE = "not-a-regular-file"
    SYMLINK_OUTSIDE_ROOTS = "symlink-outside-roots"
    TOO_LARGE = "too-large"
    UNREADABLE = "unreadable"
    NO_CERTIFICATE = "no-certificate"
    NOT_A_CERTIFICATE = "not-a-certificate"
    BAD_CERTIFICATE = "bad-certificate"
    FILE_LIMIT = "file-limit"


class ProbeStatus:
    """What a TLS handshake attempt found on a port (closed vocabulary).

    - ``tls``: handshake completed, certificate recorded;
    - ``tls-error``: the handshake failed otherwise, typically with an alert from the peer (a
      server requiring SNI, say);
    - ``not-tls``: the peer answered with bytes that are no TLS record (HTTP, SSH, …);
    - ``closed``: the peer closed or reset the connection without answering;
    - ``timeout``: no answer within the timeout;
    - ``unreachable``: the connection could not be opened;
    - ``error``: anything else, including an injected probe function that raised.
    """

    TLS = "tls"
    TLS_ERROR = "tls-error"
    NOT_TLS = "not-tls"
    CLOSED = "closed"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    ERROR = "error"


@dataclass(frozen=True)
class CertificateInfo:
    """What discovery knows about one certificate; ``fingerprint`` (SHA-256, hex) identifies it."""

    fingerprint: str
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    key_type: str
    serial: str
    self_signed: bool
    is_ca: bool


@dataclass(frozen=True)
class FoundCertificate:
    """A certificate read from ``path``; ``index`` is its position among the file's certificates."""

    path: str
    index: int
    info: CertificateInfo


@dataclass(frozen=True)
class SkippedFile:
    """A file (or one PEM block of it, when ``index`` is set) that yielded no certificate."""

    path: str
    reason: str
    index: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ParseError:
    """A configuration or /proc file that could not be (fully) understood; never raised."""

    source: str
    file: str
    line: int
    message: str


@dataclass(frozen=True)
class ListenAddress:
    """One address a server listens on. ``host`` is ``*`` for "any address"; ``port`` is None
    when the directive names none (Apache ``<VirtualHost *>``) or for a unix socket."""

    host: str
    port: int | None
    ssl: bool
    default_server: bool
    file: str
    line: int


@dataclass(frozen=True)
class CertReference:
    """A directive naming a certificate, key or chain file.

    ``path`` is the resolved host path, or None when it cannot be known without a request
    (nginx variables, Apache ``${VAR}``, ``data:`` values); ``unresolved`` then says why.
    """

    directive: str
    role: ReferenceRole
    value: str
    path: str | None
    file: str
    line: int
    unresolved: str | None = None


@dataclass(frozen=True)
class VirtualServer:
    """An nginx ``server`` block or an Apache ``<VirtualHost>``, where it starts and what it uses.

    ``tls`` is true when the server terminates TLS (nginx ``listen … ssl``, Apache
    ``SSLEngine on``).
    """

    software: Software
    file: str
    line: int
    server_names: tuple[str, ...]
    listen: tuple[ListenAddress, ...]
    tls: bool
    references: tuple[CertReference, ...]


@dataclass(frozen=True)
class ServerConfig:
    """One web server's configuration as read from its main file and everything it includes.

    ``listen`` holds server-wide ``Listen`` directives (Apache); nginx lists addresses per server.
    """

    software: Software
    main_file: str
    files: tuple[str, ...]
    servers: tuple[VirtualServer, ...]
    listen: tuple[ListenAddress, ...]
    errors: tuple[ParseError, ...]


@dataclass(frozen=True)
class ListeningSocket:
    """A TCP socket in state LISTEN, from ``/proc/net/tcp`` or ``/proc/net/tcp6``."""

    family: Family
    address: str
    port: int


@dataclass(frozen=True)
class ProbeTarget:
    """One handshake to attempt; ``sni`` None means no server_name extension is sent."""

    host: str
    port: int
    sni: str | None


@dataclass(frozen=True)
class ProbeOutcome:
    """What a probe function returns: a :class:`ProbeStatus` value and the leaf certificate."""

    status: str
    leaf_der: bytes | None = None
    detail: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe, with the served leaf's fingerprint when the handshake succeeded."""

    host: str
    port: int
    sni: str | None
    status: str
    fingerprint: str | None
    detail: str | None = None
