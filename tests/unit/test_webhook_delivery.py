"""Webhook destinations and signatures: only http(s), never a special-purpose address unless
allowed, the connection pinned to the checked addresses; HMAC-SHA256 over "<t>.<body>"."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from certplane.server.jobs.webhooks import DeliveryRefused, PinnedResolver, check_destination
from certplane.server.ra.webhooks import retry_delay, signature

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
async def test_special_purpose_destinations_are_refused(url):
    with pytest.raises(DeliveryRefused, match="special-purpose"):
        await check_destination(url, ())


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost"])
async def test_only_http_urls_with_a_host(url):
    with pytest.raises(DeliveryRefused, match="http or https"):
        await check_destination(url, ())


async def test_an_allowed_network_admits_its_addresses():
    assert await check_destination("http://127.0.0.1:9/hook", LOOPBACK) == ["127.0.0.1"]
    with pytest.raises(DeliveryRefused):
        await check_destination("http://10.0.0.1/hook", LOOPBACK)


async def test_the_connection_goes_only_to_the_checked_addresses():
    resolver = PinnedResolver(["127.0.0.1", "::1"])
    answers = await resolver.resolve("hooks.example.com", 443)
    assert [(a["host"], a["port"], a["hostname"]) for a in answers] == [
        ("127.0.0.1", 443, "hooks.example.com"),
        ("::1", 443, "hooks.example.com"),
    ]


def test_signature_is_hmac_sha256_over_time_and_body():
    secret, body = b"k" * 32, b'{"type":"approval.requested"}'
    header = signature(secret, 1_700_000_000, body)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    assert t == "1700000000"
    expected = hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert v1 == expected
    assert signature(secret, 1_700_000_001, body) != header


def test_retries_back_off_and_are_capped():
    delays = [retry_delay(n).total_seconds() for n in range(1, 8)]
    assert delays[:3] == [10, 40, 160]
    assert delays == sorted(delays) and max(delays) == 3600
