"""Quotas through the management API: live usage, overrides, tiers; a refused change changes
nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cptest.apiclient import ApiClient, problem_type
from cptest.server import ServerThread, make_config, provision

from certplane.server.clock import FakeClock


def test_usage_follows_overrides(as_role):
    platform = as_role("platform-admin", name="limits-ops")
    put = platform.put("/tenants/beta/limits", {"overrides": {"certificates-per-tenant": "10/1d"}})
    assert put.status_code == 200, put.text
    shown = as_role("auditor", tenant="beta").get("/tenants/beta/limits").json()
    assert shown["overrides"] == {"certificates-per-tenant": "10/1d"}
    (quota,) = [u for u in shown["usage"] if u["name"] == "certificates-per-tenant"]
    assert quota == {
        "name": "certificates-per-tenant",
        "rate": "10/1d",
        "source": "override",
        "remaining": 10,
        "resets_at": None,
    }
    back = platform.put("/tenants/beta/limits", {"overrides": {"certificates-per-tenant": None}})
    assert back.json()["overrides"] == {}


def test_a_refused_change_changes_nothing(as_role):
    platform = as_role("platform-admin", name="limits-ops-2")
    before = platform.get("/tenants/alpha/limits").json()
    refused = platform.put(
        "/tenants/alpha/limits",
        {"tier": "no-such-tier", "overrides": {"new-orders-per-account": "5/1h"}},
    )
    assert refused.status_code == 400 and "no-such-tier" in refused.json()["detail"]
    bad_rate = platform.put("/tenants/alpha/limits", {"overrides": {"new-orders-per-account": "x"}})
    assert bad_rate.status_code == 400
    unknown = platform.put("/tenants/alpha/limits", {"overrides": {"no-such-limit": "1/1h"}})
    assert unknown.status_code == 400
    assert platform.get("/tenants/alpha/limits").json() == before


def test_only_the_platform_sets_limits(as_role):
    response = as_role("tenant-admin", tenant="alpha").put("/tenants/alpha/limits", {"tier": ""})
    assert response.status_code == 403 and problem_type(response) == "forbidden"


@pytest.fixture(scope="module")
def metered(tmp_path_factory):
    directory = tmp_path_factory.mktemp("api-metered")
    config = make_config(directory, f"sqlite+aiosqlite:///{directory}/db.sqlite")
    config = dataclasses.replace(
        config, api=dataclasses.replace(config.api, calls_per_token="3/1h")
    )
    provision(config, {"gamma": True})
    clock = FakeClock()
    server = ServerThread(config, clock=clock).start()
    try:
        yield server, clock
    finally:
        server.stop()


def test_api_calls_are_limited_per_token(metered):
    server, clock = metered
    first = ApiClient(server.api_url, server.token("busy", "auditor", tenant="gamma"))
    second = ApiClient(server.api_url, server.token("calm", "auditor", tenant="gamma"))
    assert [first.get("/whoami").status_code for _ in range(3)] == [200] * 3
    refused = first.get("/whoami")
    assert refused.status_code == 429 and problem_type(refused) == "rate-limited"
    assert int(refused.headers["Retry-After"]) == 1200  # one call frees up every 20 minutes
    assert "api-calls-per-token" in refused.json()["detail"]
    assert second.get("/whoami").status_code == 200  # the bucket is the token's
    clock.advance(timedelta(minutes=20))
    assert first.get("/whoami").status_code == 200


def test_an_expired_token_is_refused(metered):
    server, clock = metered
    client = ApiClient(server.api_url, server.token("brief", "auditor", tenant="gamma"))
    assert client.get("/whoami").status_code == 200
    clock.advance(timedelta(days=31))  # test tokens live 30 days
    expired = client.get("/whoami")
    assert expired.status_code == 401 and problem_type(expired) == "unauthenticated"


def test_idempotency_answers_expire_and_are_pruned(metered):
    from certplane.server.app import DATABASE
    from certplane.server.storage.ops import prune_idempotency_keys

    server, clock = metered
    admin = ApiClient(server.api_url, server.token("keys", "tenant-admin", tenant="gamma"))
    header = {"Idempotency-Key": "nightly-run"}
    first = admin.post("/tenants/gamma/eab-keys", {"label": "a"}, headers=header)
    assert first.status_code == 201
    reused = admin.post("/tenants/gamma/eab-keys", {"label": "b"}, headers=header)
    assert reused.status_code == 422  # within the window: the key belongs to the first request
    clock.advance(timedelta(hours=25))
    window_start = clock.now() - timedelta(hours=24)
    pruned = server.call(lambda: prune_idempotency_keys(server.app[DATABASE], window_start))
    assert pruned >= 1
    fresh = admin.post("/tenants/gamma/eab-keys", {"label": "b"}, headers=header)
    assert fresh.status_code == 201 and fresh.json()["kid"] != first.json()["kid"]
