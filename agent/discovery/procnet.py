"""Listening TCP sockets from ``/proc/net/tcp`` and ``/proc/net/tcp6``.

Each line after the header reads ``sl local_address rem_address st …``. ``local_address`` is
``ADDR:PORT`` in hex: the port is a plain number, but the address is the kernel's in-memory
``struct in_addr``/``in6_addr`` printed as 32-bit words in *host* byte order, so on a
little-endian machine each 4-byte group is reversed (``0100007F`` is 127.0.0.1). ``st`` ``0A``
is TCP_LISTEN.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from certplane.agent.discovery.model import Family, ListeningSocket, ParseError

TCP_LISTEN = 0x0A
_TABLES: tuple[tuple[str, Family], ...] = (("tcp", "ipv4"), ("tcp6", "ipv6"))
_ADDRESS_HEX_DIGITS = {"ipv4": 8, "ipv6": 32}
ByteOrder = Literal["little", "big"]


@dataclass(frozen=True)
class ListenerScan:
    """Listening sockets (deduplicated, sorted) and the lines that could not be parsed."""

    sockets: tuple[ListeningSocket, ...]
    errors: tuple[ParseError, ...]


def read_listeners(
    proc_root: Path = Path("/proc"), byteorder: ByteOrder | None = None
) -> ListenerScan:
    """Listening sockets of ``proc_root``/net/tcp and tcp6; a missing table (no IPv6) is empty."""
    order: ByteOrder = byteorder or ("little" if sys.byteorder == "little" else "big")
    sockets: set[ListeningSocket] = set()
    errors: list[ParseError] = []
    for name, family in _TABLES:
        path = proc_root / "net" / name
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        table = parse_proc_net_tcp(text, family, str(path), order)
        sockets.update(table.sockets)
        errors += table.errors
    return ListenerScan(tuple(sorted(sockets, key=socket_sort_key)), tuple(errors))


def parse_proc_net_tcp(
    text: str, family: Family, file: str, byteorder: ByteOrder = "little"
) -> ListenerScan:
    """The LISTEN sockets of one table's text, in table order, and an error per malformed row."""
    sockets: list[ListeningSocket] = []
    errors: list[ParseError] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "sl":
            continue
        try:
            found = _listening(fields, family, byteorder)
        except ValueError as exc:
            errors.append(ParseError("proc", file, number, str(exc)))
            continue
        if found is not None:
            sockets.append(found)
    return ListenerScan(tuple(sockets), tuple(errors))


def decode_address(hex_address: str, family: Family, byteorder: ByteOrder = "little") -> str:
    """The textual IP address of a /proc hex address; raises ValueError when malformed."""
    if len(hex_address) != _ADDRESS_HEX_DIGITS[family]:
        raise ValueError(f"bad {family} address {hex_address!r}")
    raw = bytes.fromhex(hex_address)
    if byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # one spelling on every Python version
    return str(address)


def socket_sort_key(sock: ListeningSocket) -> tuple[int, int, int]:
    """IPv4 before IPv6, then by numeric address and port."""
    address = ipaddress.ip_address(sock.address)
    return (address.version, int(address), sock.port)


def _listening(fields: list[str], family: Family, byteorder: ByteOrder) -> ListeningSocket | None:
    """The socket of one table row if it is listening; ValueError when the row is malformed."""
    if len(fields) < 4 or not fields[0].endswith(":"):
        raise ValueError("not a socket table row")
    if int(fields[3], 16) != TCP_LISTEN:
        return None
    hex_address, colon, hex_port = fields[1].partition(":")
    if not colon or len(hex_port) != 4:
        raise ValueError(f"bad local address {fields[1]!r}")
    return ListeningSocket(
        family, decode_address(hex_address, family, byteorder), int(hex_port, 16)
    )
