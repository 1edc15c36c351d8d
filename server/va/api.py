"""The validation authority's vocabulary: what goes in, what comes out, and its one DNS port.

The VA is stateless (ARCHITECTURE.md §2): the RA hands it primitives in a `ValidationRequest` and
stores the `ValidationResult` it gets back on the challenge. Nothing here knows about tenants,
accounts as rows, or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Protocol

from certplane.server.errors import AcmeProblem
from certplane.server.model import ChallengeType, Identifier
from certplane.server.va.special_purpose import is_special_purpose, overlapping_entries

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# One validation record (Boulder's field names): url, hostname, port, addressesResolved,
# addressUsed, addressesTried. Values are JSON-ready; response bodies never go in here.
ValidationRecord = dict[str, Any]

DEFAULT_HTTP01_PORT = 80
DEFAULT_TLSALPN01_PORT = 443
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_REDIRECTS = 10
DEFAULT_HTTP_BODY_LIMIT = 8192


@dataclass(frozen=True)
class NetworkPolicy:
    """Where validation may connect and how patient it is; every default is the Internet's.

    ``allowed_networks`` re-admits special-purpose ranges (e.g. ``127.0.0.0/8`` in a lab);
    ``dns_servers`` empty means the system resolver. Anything non-default is reported by
    `describe_overrides` so the operator sees it in the log at start.
    """

    allowed_networks: tuple[IPNetwork, ...] = ()
    http01_port: int = DEFAULT_HTTP01_PORT
    tlsalpn01_port: int = DEFAULT_TLSALPN01_PORT
    dns_servers: tuple[tuple[str, int], ...] = ()
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    http_body_limit: int = DEFAULT_HTTP_BODY_LIMIT

    def __post_init__(self) -> None:
        ports = [self.http01_port, self.tlsalpn01_port, *(p for _, p in self.dns_servers)]
        if any(not 0 < port < 65536 for port in ports):
            raise ValueError("validation ports must be between 1 and 65535")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if self.max_redirects < 0 or self.http_body_limit <= 0:
            raise ValueError("max_redirects must be >= 0 and http_body_limit > 0")

    def is_allowed(self, ip: IPAddress) -> bool:
        """True when validation may connect to ``ip``: not special-purpose, or re-admitted."""
        if is_special_purpose(ip) is None:
            return True
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    @property
    def redirect_ports(self) -> frozenset[int]:
        """Ports an http-01 redirect may lead to (§8.3: 80 and 443, plus a configured port)."""
        return frozenset({DEFAULT_HTTP01_PORT, DEFAULT_TLSALPN01_PORT, self.http01_port})

    def describe_overrides(self) -> list[str]:
        """One human line per non-default setting, meant to be logged as a warning at start."""
        lines = [self._describe_allowed(net) for net in self.allowed_networks]
        if self.http01_port != DEFAULT_HTTP01_PORT:
            lines.append(f"http-01 validation connects to port {self.http01_port}, not 80")
        if self.tlsalpn01_port != DEFAULT_TLSALPN01_PORT:
            lines.append(f"tls-alpn-01 validation connects to port {self.tlsalpn01_port}, not 443")
        if self.dns_servers:
            servers = ", ".join(_host_port(host, port) for host, port in self.dns_servers)
            lines.append(f"validation DNS queries go to {servers}, not the system resolver")
        if self.timeout_seconds != DEFAULT_TIMEOUT_SECONDS:
            lines.append(f"validation timeout is {self.timeout_seconds:g} s, not 10 s")
        if self.max_redirects != DEFAULT_MAX_REDIRECTS:
            lines.append(f"http-01 follows at most {self.max_redirects} redirects, not 10")
        if self.http_body_limit != DEFAULT_HTTP_BODY_LIMIT:
            lines.append(f"http-01 reads at most {self.http_body_limit} bytes, not 8192")
        return lines

    @staticmethod
    def _describe_allowed(net: IPNetwork) -> str:
        entries = overlapping_entries(net)
        if not entries:
            return f"allowed network {net} is not special-purpose: the setting has no effect"
        names = "; ".join(str(entry) for entry in entries)
        return f"validation may connect to special-purpose network {net} ({names})"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ValidationRequest:
    """One challenge to check, as primitives (RFC 8555 §8).

    ``caa_identities`` are the tenant's CA domain names for CAA (RFC 8659 §4.2); empty skips
    the CAA check.
    """

    identifier: Identifier
    challenge_type: ChallengeType
    token: str
    key_authorization: str
    account_uri: str
    caa_identities: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationResult:
    """The VA's verdict: ``ok`` with no problem, or not ``ok`` with exactly one problem."""

    ok: bool
    problem: AcmeProblem | None = None
    records: tuple[ValidationRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CAARecord:
    """One CAA resource record (RFC 8659 §4.1); ``tag`` as published, ``value`` decoded."""

    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        """The Issuer Critical Flag is the most significant bit of the flags octet (§4.1)."""
        return bool(self.flags & 0x80)


class DnsError(Exception):
    """A lookup that failed (SERVFAIL, REFUSED, timeout), as opposed to an empty answer.

    ``detail`` is safe to show to a subscriber; it becomes a ``dns`` problem.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Resolver(Protocol):
    """The VA's DNS port. NXDOMAIN and NODATA answer empty lists; failures raise `DnsError`."""

    async def resolve_addresses(self, name: str) -> list[IPAddress]:
        """The A and AAAA addresses of ``name``."""
        ...

    async def resolve_txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` (each record's strings joined), CNAMEs followed."""
        ...

    async def resolve_caa(self, name: str) -> list[CAARecord]:
        """The CAA RRset at ``name`` exactly (no climbing), CNAMEs followed."""
        ...
