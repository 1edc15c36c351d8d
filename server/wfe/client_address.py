"""The client's address behind trusted reverse proxies (``server.trusted_proxies``).

X-Forwarded-For (a de-facto header; RFC 7239 §5.2 standardises its ``for=`` successor) is a
comma-separated list that each proxy appends its peer to, so only the entries added by proxies
we trust are believable: walking it from the right, the first entry that is not itself a
trusted proxy is the client. Everything left of that entry was written by the client and is
ignored, and from an untrusted peer the whole header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = "X-Forwarded-For"


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose X-Forwarded-For is believed; none by default."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> TrustedProxies:
        """From configuration CIDRs (already validated by the loader)."""
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The client's address: from ``forwarded_for`` (every X-Forwarded-For header, in
        order) when the TCP ``peer`` is a trusted proxy, else the peer itself (an IPv4-mapped
        IPv6 peer as its IPv4 address).

        Malformed entries are skipped. When every entry is a trusted proxy too, the client is
        the left-most of them (a client inside the trusted networks); with no usable entry, it
        is the peer.
        """
        peer_ip = parse_address(peer) if peer is not None else None
        if peer_ip is None:
            return peer
        if not self.trusts(peer_ip):
            return str(peer_ip)
        hops = [ip for ip in map(parse_address, _entries(forwarded_for)) if ip is not None]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return str(hop)
        return str(hops[0]) if hops else str(peer_ip)


def _entries(headers: Sequence[str]) -> list[str]:
    """The entries of one or more X-Forwarded-For headers, in order (RFC 9110 §5.3)."""
    return [entry.strip() for header in headers for entry in header.split(",")]


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: ``192.0.2.1``, ``192.0.2.1:443``, ``2001:db8::1`` or
    ``[2001:db8::1]:443``; an IPv4-mapped IPv6 address is its IPv4 address. None otherwise."""
    if text.startswith("["):
        text, sep, rest = text[1:].partition("]")
        if not sep or (rest and not _is_port(rest)):
            return None
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    """``:PORT`` with PORT a TCP port number."""
    digits = text[1:]
    if not (text.startswith(":") and digits.isascii() and digits.isdigit()):
        return False
    return len(digits) <= 5 and int(digits) <= 65535
