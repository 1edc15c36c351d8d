"""new-accounts-per-ip behind reverse proxies: X-Forwarded-For names the client only when the
TCP peer is a trusted proxy (server.trusted_proxies); from anyone else it is ignored."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest
from cptest.jwsclient import ERR, RawClient
from cptest.server import LIMITS_OFF, Platform, ServerThread, make_config, provision

# The test client connects from 127.0.0.1.
LOOPBACK_TRUSTED = ("127.0.0.0/8",)
ELSEWHERE_TRUSTED = ("10.0.0.0/8",)


@contextlib.contextmanager
def _serve(backend: str, tmp_path_factory, trusted_proxies: tuple[str, ...]) -> Iterator[Platform]:
    from cptest.databases import database_url

    directory = tmp_path_factory.mktemp(f"proxies-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(
            directory, url, limits=dataclasses.replace(LIMITS_OFF, new_accounts_per_ip="2/1h")
        )
        server_config = dataclasses.replace(config.server, trusted_proxies=trusted_proxies)
        platform = provision(dataclasses.replace(config, server=server_config), {"open": False})
        server = ServerThread(platform.config).start()
        try:
            yield platform
        finally:
            server.stop()
        assert not server.sql_guard.violations, server.sql_guard.violations


@pytest.fixture(scope="module")
def trusted(backend, tmp_path_factory) -> Iterator[Platform]:
    with _serve(backend, tmp_path_factory, LOOPBACK_TRUSTED) as platform:
        yield platform


@pytest.fixture(scope="module")
def untrusted(backend, tmp_path_factory) -> Iterator[Platform]:
    with _serve(backend, tmp_path_factory, ELSEWHERE_TRUSTED) as platform:
        yield platform


def _new_account(platform: Platform, forwarded_for: str | None) -> int:
    client = RawClient(platform.directory("open"))
    if forwarded_for is not None:
        client.session.headers["X-Forwarded-For"] = forwarded_for
    response = client.new_account()
    if response.status_code == 429:
        body = response.json()
        assert body["type"] == ERR + "rateLimited" and response.headers["Retry-After"]
        assert "new-accounts-per-ip (2 per 1h)" in body["detail"]
    return response.status_code


def test_behind_a_trusted_proxy_the_forwarded_client_counts(trusted):
    client = "198.51.100.7"
    assert [_new_account(trusted, client) for _ in range(3)] == [201, 201, 429]
    assert _new_account(trusted, "198.51.100.8") == 201  # another client
    assert _new_account(trusted, f"203.0.113.1, {client}") == 429  # a spoofed left part
    assert _new_account(trusted, f"{client}, 127.0.0.2") == 429  # through two proxies
    assert _new_account(trusted, f"{client}, bogus") == 429  # a malformed entry skipped
    assert _new_account(trusted, "2001:db8:7::1") == 201
    assert _new_account(trusted, "[2001:db8:7::2]:4711") == 201  # the same /64
    assert _new_account(trusted, "2001:db8:7::3") == 429
    assert [_new_account(trusted, "bogus") for _ in range(3)] == [201, 201, 429]  # the peer
    assert _new_account(trusted, None) == 429  # the peer's bucket, without a header too


def test_from_an_untrusted_peer_the_header_is_ignored(untrusted):
    forged = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert [_new_account(untrusted, address) for address in forged] == [201, 201, 429]
    assert _new_account(untrusted, None) == 429  # all of them were the peer, 127.0.0.1
