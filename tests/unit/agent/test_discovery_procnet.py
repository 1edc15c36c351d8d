"""/proc/net/tcp and tcp6: the kernel's hex addresses, LISTEN filtering, malformed rows."""

# ruff: noqa: E501 - the tables below are verbatim kernel rows, longer than our line length

from __future__ import annotations

import pytest

from certplane.agent.discovery import (
    ListenerScan,
    ListeningSocket,
    parse_proc_net_tcp,
    read_listeners,
)
from certplane.agent.discovery.model import ParseError
from certplane.agent.discovery.procnet import decode_address

# Rows copied from a little-endian Linux host (inode and pointer columns shortened).
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 10258 1 0000000026f3304d 100 0 0 10 0
   1: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 584721 1 00000000c639980f 100 0 0 10 0
   2: 0A02000A:C350 0100A8C0:01BB 01 00000000:00000000 02:000A7B2B 00000000  1000        0 61234 2 0000000000000000 20 4 30 10 -1
   3: 6401A8C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6123 1 000000009e8bf8b2 100 0 0 10 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4725 1 0000000057beced3 100 0 0 10 0
   1: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6384 1 0000000090a5ec2c 100 0 0 10 0
   2: B80D0120000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6385 1 0000000090a5ec2c 100 0 0 10 0
   3: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6386 1 0000000090a5ec2c 100 0 0 10 0
   4: 00000000000000000000000001000000:01BB 00000000000000000000000001000000:E0F2 06 00000000:00000000 03:00000F9A 00000000     0        0 0 3 0000000000000000
"""


@pytest.mark.parametrize(
    ("hex_address", "family", "address"),
    [
        ("0100007F", "ipv4", "127.0.0.1"),
        ("00000000", "ipv4", "0.0.0.0"),
        ("6401A8C0", "ipv4", "192.168.1.100"),
        ("00000000000000000000000001000000", "ipv6", "::1"),
        ("B80D0120000000000000000001000000", "ipv6", "2001:db8::1"),
        ("0000000000000000FFFF00000100007F", "ipv6", "::ffff:127.0.0.1"),
    ],
)
def test_little_endian_addresses(hex_address, family, address):
    assert decode_address(hex_address, family) == address


def test_big_endian_hosts_print_addresses_in_network_order():
    assert decode_address("7F000001", "ipv4", "big") == "127.0.0.1"
    assert decode_address("20010DB8000000000000000000000001", "ipv6", "big") == "2001:db8::1"


def test_only_listening_sockets_are_kept():
    assert parse_proc_net_tcp(TCP, "ipv4", "tcp") == ListenerScan(
        sockets=(
            ListeningSocket("ipv4", "127.0.0.1", 3306),
            ListeningSocket("ipv4", "0.0.0.0", 443),
            ListeningSocket("ipv4", "192.168.1.100", 8080),
        ),
        errors=(),
    )


def test_ipv6_table():
    assert parse_proc_net_tcp(TCP6, "ipv6", "tcp6").sockets == (
        ListeningSocket("ipv6", "::1", 6379),
        ListeningSocket("ipv6", "::", 443),
        ListeningSocket("ipv6", "2001:db8::1", 8443),
        ListeningSocket("ipv6", "::ffff:127.0.0.1", 8080),
    )


def test_malformed_rows_are_recorded():
    text = (
        TCP.splitlines()[0]
        + "\n   0: 0100007F:0CEA 00000000:0000 0A\n"
        + "   1: 0100007F 00000000:0000 0A\n"
        + "   2: 01007F:0CEA 00000000:0000 0A\n"
        + "   3: 0100007F:0CEA 00000000:0000 ZZ\n"
        + "garbage\n\n"
    )
    scan = parse_proc_net_tcp(text, "ipv4", "/proc/net/tcp")
    assert scan.sockets == (ListeningSocket("ipv4", "127.0.0.1", 3306),)
    assert [(e.line, e.source, e.file) for e in scan.errors] == [
        (3, "proc", "/proc/net/tcp"),
        (4, "proc", "/proc/net/tcp"),
        (5, "proc", "/proc/net/tcp"),
        (6, "proc", "/proc/net/tcp"),
    ]
    assert scan.errors[0] == ParseError("proc", "/proc/net/tcp", 3, "bad local address '0100007F'")


def test_read_listeners_merges_deduplicates_and_sorts(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP + TCP.splitlines()[1] + "\n")
    (tmp_path / "net" / "tcp6").write_text(TCP6)
    scan = read_listeners(tmp_path, "little")
    assert scan.errors == ()
    assert [(s.address, s.port) for s in scan.sockets] == [
        ("0.0.0.0", 443),
        ("127.0.0.1", 3306),
        ("192.168.1.100", 8080),
        ("::", 443),
        ("::1", 6379),
        ("::ffff:127.0.0.1", 8080),
        ("2001:db8::1", 8443),
    ]


def test_a_missing_ipv6_table_is_empty(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP)
    assert len(read_listeners(tmp_path).sockets) == 3
    assert read_listeners(tmp_path / "nowhere") == ListenerScan((), ())
