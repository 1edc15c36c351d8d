"""The client address behind trusted proxies: X-Forwarded-For is believed only from them, read
from the right, and malformed entries never count."""

from __future__ import annotations

import pytest

from certplane.server.wfe.client_address import TrustedProxies, parse_address

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "2001:db8:ff::/48"])


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8443", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("2001:DB8::A", "2001:db8::a"),
    ],
)
def test_addresses_as_proxies_write_them(text, address):
    assert str(parse_address(text)) == address


@pytest.mark.parametrize(
    "text",
    ["", "unknown", "_hidden", "192.0.2.1:", "192.0.2.1:http", "192.0.2.1:123456", "300.1.1.1",
     "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "2001:db8::1:443:x", "192.0.2.0/24",
     "example.com", "[192.0.2.1]:99999"],
)  # fmt: skip
def test_malformed_entries_are_not_addresses(text):
    assert parse_address(text) is None


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # An untrusted peer: the header is ignored, whatever it says (a spoofing client).
        ("192.0.2.50", ["198.51.100.1"], "192.0.2.50"),
        ("192.0.2.50", [], "192.0.2.50"),
        ("2001:db8:1::5", ["198.51.100.1"], "2001:db8:1::5"),
        ("::ffff:192.0.2.50", ["198.51.100.1"], "192.0.2.50"),
        # A trusted proxy: the right-most entry that is not a trusted proxy.
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["203.0.113.66, 198.51.100.1"], "198.51.100.1"),  # left part spoofed
        ("10.1.2.3", ["198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # through two proxies
        ("10.1.2.3", ["203.0.113.66", "198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # 2 headers
        ("2001:db8:ff::1", ["2001:db8:1::7, 2001:db8:ff:1::2"], "2001:db8:1::7"),
        ("10.1.2.3", ["[2001:db8:1::7]:5555"], "2001:db8:1::7"),
        ("10.1.2.3", ["198.51.100.1:1234"], "198.51.100.1"),
        # Malformed entries are skipped, wherever they are.
        ("10.1.2.3", ["198.51.100.1, unknown"], "198.51.100.1"),
        ("10.1.2.3", ["garbage, 198.51.100.1, , 10.0.0.9"], "198.51.100.1"),
        # Nothing usable: the peer; only trusted entries: the left-most (an inside client).
        ("10.1.2.3", ["unknown"], "10.1.2.3"),
        ("10.1.2.3", [""], "10.1.2.3"),
        ("10.1.2.3", [], "10.1.2.3"),
        ("10.1.2.3", ["10.0.0.7, 10.0.0.8"], "10.0.0.7"),
        # No peer address (a UNIX socket): unknown.
        (None, ["198.51.100.1"], None),
    ],
)
def test_client_address(peer, headers, client):
    assert PROXIES.client_address(peer, headers) == client


def test_no_trusted_proxies_means_the_peer():
    assert TrustedProxies().client_address("10.1.2.3", ["198.51.100.1"]) == "10.1.2.3"


def test_trust_is_by_network():
    assert PROXIES.trusts(parse_address("10.255.255.255"))  # type: ignore[arg-type]
    assert not PROXIES.trusts(parse_address("11.0.0.1"))  # type: ignore[arg-type]
    assert not PROXIES.trusts(parse_address("2001:db8:fe::1"))  # type: ignore[arg-type]
