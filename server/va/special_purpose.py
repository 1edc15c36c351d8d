"""The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890) as an explicit table.

Validation must never be steered at infrastructure the subscriber does not own: loopback, private
networks, link-local metadata services, translators that lead into private space. `ipaddress`'s
``is_private``/``is_global`` change between Python releases and mix concepts, so the VA uses this
table instead, which reads like the registries it copies (checked against iana.org, 2025).

Decision on the registries' "Globally Reachable" column (NOTE(special-purpose)): the VA refuses
*every* entry, whatever that column says, and the table keeps the column only for the record.
The entries marked globally reachable are anycast protocol services (PCP, TURN, DNS-SD SRP, AS112,
AMT), identifier spaces that are not hosts (ORCHIDv2, DRIP DETs), and the NAT64 well-known prefix
``64:ff9b::/96``, whose addresses embed an IPv4 address that a translator would happily forward
into private space. None is a place where a subscriber runs a web server, so refusing them costs
nothing and fails closed. Deprecated blocks (6to4 relay anycast ``192.88.99.0/24``, ``2002::/16``,
ORCHID, Teredo) are refused for the same reason. Beyond the registries the table adds multicast
(RFC 5771, RFC 4291 §2.7), the deprecated IPv4-compatible ``::/96`` and site-local ``fec0::/10``.
An operator who needs any of these re-admits it with `NetworkPolicy.allowed_networks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network


@dataclass(frozen=True)
class SpecialPurposeEntry:
    """One registry row: the block, its registered name and RFC, and its reachability column.

    ``globally_reachable`` is the registry's column: True, False, or None for "N/A".
    """

    network: IPv4Network | IPv6Network
    name: str
    rfc: str
    globally_reachable: bool | None

    def __str__(self) -> str:
        return f"{self.network} {self.name}, {self.rfc}"


def _e(block: str, name: str, rfc: str, reachable: bool | None = False) -> SpecialPurposeEntry:
    return SpecialPurposeEntry(ip_network(block), name, rfc, reachable)


IPV4_SPECIAL_PURPOSE: tuple[SpecialPurposeEntry, ...] = (
    _e("0.0.0.0/8", '"This network"', "RFC 791 §3.2"),
    _e("0.0.0.0/32", '"This host on this network"', "RFC 1122 §3.2.1.3"),
    _e("10.0.0.0/8", "Private-Use", "RFC 1918"),
    _e("100.64.0.0/10", "Shared Address Space", "RFC 6598"),
    _e("127.0.0.0/8", "Loopback", "RFC 1122 §3.2.1.3"),
    _e("169.254.0.0/16", "Link Local", "RFC 3927"),
    _e("172.16.0.0/12", "Private-Use", "RFC 1918"),
    _e("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 §2.1"),
    _e("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335"),
    _e("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    _e("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True),
    _e("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _e("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2"),
    _e("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2"),
    _e("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737"),
    _e("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    _e("192.52.193.0/24", "AMT", "RFC 7450", True),
    _e("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None),
    _e("192.168.0.0/16", "Private-Use", "RFC 1918"),
    _e("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True),
    _e("198.18.0.0/15", "Benchmarking", "RFC 2544"),
    _e("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737"),
    _e("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737"),
    _e("224.0.0.0/4", "Multicast (not in the registry)", "RFC 5771"),
    _e("240.0.0.0/4", "Reserved", "RFC 1112 §4"),
    _e("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 §7"),
)

IPV6_SPECIAL_PURPOSE: tuple[SpecialPurposeEntry, ...] = (
    _e("::1/128", "Loopback Address", "RFC 4291"),
    _e("::/128", "Unspecified Address", "RFC 4291"),
    _e("::/96", "Deprecated IPv4-compatible (not in the registry)", "RFC 4291 §2.5.5.1"),
    _e("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291"),
    _e("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True),
    _e("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215"),
    _e("100::/64", "Discard-Only Address Block", "RFC 6666"),
    _e("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780"),
    _e("2001::/23", "IETF Protocol Assignments", "RFC 2928"),
    _e("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None),
    _e("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    _e("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _e("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    _e("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752"),
    _e("2001:3::/32", "AMT", "RFC 7450", True),
    _e("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    _e("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),
    _e("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    _e("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    _e("2001:db8::/32", "Documentation", "RFC 3849"),
    _e("2002::/16", "6to4", "RFC 3056", None),
    _e("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    _e("3fff::/20", "Documentation", "RFC 9637"),
    _e("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602"),
    _e("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190"),
    _e("fe80::/10", "Link-Local Unicast", "RFC 4291"),
    _e("fec0::/10", "Deprecated site-local (not in the registry)", "RFC 3879"),
    _e("ff00::/8", "Multicast (not in the registry)", "RFC 4291 §2.7"),
)

# Most specific first, so a lookup names the narrowest registered purpose.
_BY_SPECIFICITY: tuple[SpecialPurposeEntry, ...] = tuple(
    sorted(
        IPV4_SPECIAL_PURPOSE + IPV6_SPECIAL_PURPOSE,
        key=lambda entry: entry.network.prefixlen,
        reverse=True,
    )
)


def is_special_purpose(ip: IPv4Address | IPv6Address) -> SpecialPurposeEntry | None:
    """The most specific special-purpose entry containing ``ip``, or None for ordinary space."""
    for entry in _BY_SPECIFICITY:
        if entry.network.version == ip.version and ip in entry.network:
            return entry
    return None


def overlapping_entries(net: IPv4Network | IPv6Network) -> tuple[SpecialPurposeEntry, ...]:
    """Entries that share at least one address with ``net`` (for describing overrides)."""
    return tuple(
        entry
        for entry in IPV4_SPECIAL_PURPOSE + IPV6_SPECIAL_PURPOSE
        if entry.network.version == net.version and entry.network.overlaps(net)
    )
