"""Which configured servers answer on a listening socket, and with which SNI names to probe it.

A configured listen address *covers* a socket when the ports are equal and either side is a
wildcard (``*``, ``_default_``, ``0.0.0.0``, ``::``), a host name, or the same IP address. The
server that answers clients sending no SNI is, per software, the first TLS server covering the
socket with ``default_server`` set, else the first in configuration order (nginx and Apache
alike).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from certplane.agent.discovery.model import ListenAddress, ListeningSocket, VirtualServer

_WILDCARDS = frozenset({"*", "_default_", ""})
_NOT_SNI = frozenset("*?~$\"' ")


def listen_covers(listen: ListenAddress, sock: ListeningSocket) -> bool:
    """Whether ``listen`` may be what is bound to ``sock`` (see the module docstring)."""
    if listen.port != sock.port:
        return False
    wanted, bound = _ip(listen.host), _ip(sock.address)
    if wanted is None or bound is None:
        return True
    return wanted == bound or wanted.is_unspecified or bound.is_unspecified


def tls_servers_on(servers: Iterable[VirtualServer], sock: ListeningSocket) -> list[VirtualServer]:
    """The servers with a TLS listen address covering ``sock``, in configuration order."""
    return [s for s in servers if any(_tls_covers(address, sock) for address in s.listen)]


def default_servers(servers: Iterable[VirtualServer], sock: ListeningSocket) -> list[VirtualServer]:
    """Per software, the TLS server answering on ``sock`` when the client sends no SNI."""
    chosen: dict[str, VirtualServer] = {}
    for server in tls_servers_on(servers, sock):
        current = chosen.get(server.software)
        if current is None or (_flagged(server, sock) and not _flagged(current, sock)):
            chosen[server.software] = server
    return list(chosen.values())


def sni_names(server: VirtualServer) -> tuple[str, ...]:
    """The server's names usable as SNI, normalised, in configuration order without repeats."""
    names = (sni_name(name) for name in server.server_names)
    return tuple(dict.fromkeys(name for name in names if name is not None))


def sni_plan(
    sockets: Sequence[ListeningSocket], servers: Sequence[VirtualServer]
) -> dict[ListeningSocket, tuple[str, ...]]:
    """For each socket, the sorted SNI names of the TLS servers configured on it."""
    plan = {}
    for sock in sockets:
        names = {name for server in tls_servers_on(servers, sock) for name in sni_names(server)}
        plan[sock] = tuple(sorted(names))
    return plan


def sni_name(name: str) -> str | None:
    """A configured server name as an SNI value, or None when it cannot be one: wildcards,
    regular expressions, variables, ``_``, empty names and IP addresses. ``https://host:443``
    (Apache) becomes ``host``; nginx's ``.example.com`` becomes ``example.com``."""
    host = name.strip().lower().partition("://")[2] or name.strip().lower()
    host = host.partition("/")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.removeprefix(".").removesuffix(".")
    if not host or host == "_" or host.startswith("[") or _NOT_SNI & set(host):
        return None
    return None if _ip(host) is not None else host


def _tls_covers(address: ListenAddress, sock: ListeningSocket) -> bool:
    return address.ssl and listen_covers(address, sock)


def _flagged(server: VirtualServer, sock: ListeningSocket) -> bool:
    return any(a.default_server and _tls_covers(a, sock) for a in server.listen)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` names; wildcards count as unspecified, names as None."""
    if host in _WILDCARDS:
        return ipaddress.IPv4Address(0)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
