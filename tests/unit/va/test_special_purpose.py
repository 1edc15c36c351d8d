from ipaddress import ip_address, ip_network

import pytest

from certplane.server.va.api import NetworkPolicy
from certplane.server.va.special_purpose import (
    IPV4_SPECIAL_PURPOSE,
    IPV6_SPECIAL_PURPOSE,
    is_special_purpose,
)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("0.1.2.3", "0.0.0.0/8"),
        ("0.0.0.0", "0.0.0.0/32"),
        ("10.20.30.40", "10.0.0.0/8"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("100.127.255.254", "100.64.0.0/10"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("127.255.0.9", "127.0.0.0/8"),
        ("169.254.169.254", "169.254.0.0/16"),
        ("172.16.0.1", "172.16.0.0/12"),
        ("172.31.255.255", "172.16.0.0/12"),
        ("192.0.0.100", "192.0.0.0/24"),
        ("192.0.0.9", "192.0.0.9/32"),
        ("192.0.0.170", "192.0.0.170/32"),
        ("192.0.2.1", "192.0.2.0/24"),
        ("192.31.196.1", "192.31.196.0/24"),
        ("192.52.193.1", "192.52.193.0/24"),
        ("192.88.99.1", "192.88.99.0/24"),
        ("192.168.1.1", "192.168.0.0/16"),
        ("192.175.48.6", "192.175.48.0/24"),
        ("198.18.0.1", "198.18.0.0/15"),
        ("198.19.255.1", "198.18.0.0/15"),
        ("198.51.100.7", "198.51.100.0/24"),
        ("203.0.113.9", "203.0.113.0/24"),
        ("224.0.0.251", "224.0.0.0/4"),
        ("239.255.255.250", "224.0.0.0/4"),
        ("240.0.0.1", "240.0.0.0/4"),
        ("255.255.255.255", "255.255.255.255/32"),
        ("::1", "::1/128"),
        ("::", "::/128"),
        ("::7f00:1", "::/96"),
        ("::ffff:127.0.0.1", "::ffff:0:0/96"),
        ("::ffff:8.8.8.8", "::ffff:0:0/96"),
        ("64:ff9b::a00:1", "64:ff9b::/96"),
        ("64:ff9b:1::1", "64:ff9b:1::/48"),
        ("100::1", "100::/64"),
        ("100:0:0:1::1", "100:0:0:1::/64"),
        ("2001:0:4136:e378::1", "2001::/32"),
        ("2001:1::1", "2001:1::1/128"),
        ("2001:2::1", "2001:2::/48"),
        ("2001:4:112::1", "2001:4:112::/48"),
        ("2001:1ff::1", "2001::/23"),
        ("2001:20::1", "2001:20::/28"),
        ("2001:db8::1", "2001:db8::/32"),
        ("2002:c000:204::1", "2002::/16"),
        ("2620:4f:8000::1", "2620:4f:8000::/48"),
        ("3fff::1", "3fff::/20"),
        ("5f00::1", "5f00::/16"),
        ("fc00::1", "fc00::/7"),
        ("fd12:3456::1", "fc00::/7"),
        ("fe80::1", "fe80::/10"),
        ("fec0::1", "fec0::/10"),
        ("ff02::1", "ff00::/8"),
    ],
)
def test_special_purpose_ranges_name_the_most_specific_entry(address, network):
    entry = is_special_purpose(ip_address(address))
    assert entry is not None
    assert entry.network == ip_network(network)
    assert entry.rfc.startswith("RFC")


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700::",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2001:200::1",
        "2a00:1450::1",
    ],
)
def test_ordinary_addresses_are_not_special(address):
    assert is_special_purpose(ip_address(address)) is None


def test_globally_reachable_column_is_kept_but_everything_is_refused():
    reachable = [e for e in IPV4_SPECIAL_PURPOSE + IPV6_SPECIAL_PURPOSE if e.globally_reachable]
    assert {str(e.network) for e in reachable} >= {"2001:4:112::/48", "64:ff9b::/96"}
    policy = NetworkPolicy()
    assert not any(policy.is_allowed(e.network.network_address) for e in reachable)


def test_table_networks_are_unique_and_strict():
    networks = [e.network for e in IPV4_SPECIAL_PURPOSE + IPV6_SPECIAL_PURPOSE]
    assert len(set(networks)) == len(networks)


def test_policy_readmits_only_what_it_names():
    policy = NetworkPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
    assert policy.is_allowed(ip_address("127.0.0.1"))
    assert policy.is_allowed(ip_address("8.8.8.8"))
    assert not policy.is_allowed(ip_address("10.0.0.1"))
    assert not policy.is_allowed(ip_address("::1"))
    assert not policy.is_allowed(ip_address("::ffff:127.0.0.1"))


def test_default_policy_refuses_special_and_allows_ordinary():
    policy = NetworkPolicy()
    assert not policy.is_allowed(ip_address("127.0.0.1"))
    assert not policy.is_allowed(ip_address("fe80::1"))
    assert policy.is_allowed(ip_address("2606:4700::1"))


def test_describe_overrides_is_empty_by_default():
    assert NetworkPolicy().describe_overrides() == []


def test_describe_overrides_names_every_deviation():
    policy = NetworkPolicy(
        allowed_networks=(ip_network("127.0.0.0/8"), ip_network("8.8.8.0/24")),
        http01_port=5002,
        tlsalpn01_port=5001,
        dns_servers=(("127.0.0.1", 8053), ("::1", 53)),
        timeout_seconds=2.5,
        max_redirects=3,
        http_body_limit=100,
    )
    lines = policy.describe_overrides()
    assert lines == [
        "validation may connect to special-purpose network 127.0.0.0/8 "
        "(127.0.0.0/8 Loopback, RFC 1122 §3.2.1.3)",
        "allowed network 8.8.8.0/24 is not special-purpose: the setting has no effect",
        "http-01 validation connects to port 5002, not 80",
        "tls-alpn-01 validation connects to port 5001, not 443",
        "validation DNS queries go to 127.0.0.1:8053, [::1]:53, not the system resolver",
        "validation timeout is 2.5 s, not 10 s",
        "http-01 follows at most 3 redirects, not 10",
        "http-01 reads at most 100 bytes, not 8192",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"http01_port": 0},
        {"tlsalpn01_port": 70000},
        {"dns_servers": (("127.0.0.1", 0),)},
        {"timeout_seconds": 0},
        {"max_redirects": -1},
        {"http_body_limit": 0},
    ],
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        NetworkPolicy(**kwargs)
