"""Rate limits in the ACME flow: rateLimited (429) with Retry-After and a detail naming the limit
and when it frees up; the buckets refill with time (a fake clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cptest.flows import answered_order
from cptest.jwsclient import ERR, RawClient
from cptest.server import ServerThread, make_config, provision

from certplane.server.clock import FakeClock
from certplane.server.config import LimitsConfig


@pytest.fixture(scope="module")
def limited(backend, tmp_path_factory):
    from cptest.databases import database_url

    directory = tmp_path_factory.mktemp(f"limits-{backend}")
    with database_url(backend, directory) as url:
        limits = LimitsConfig(
            new_orders_per_account="3/1h",
            new_accounts_per_tenant="4/1h",
            new_accounts_per_ip="6/1h",
        )
        platform = provision(make_config(directory, url, limits=limits), {"open": False})
        clock = FakeClock()
        server = ServerThread(platform.config, clock=clock).start()
        try:
            yield platform, clock, server
        finally:
            server.stop()


def test_new_orders_per_account(limited):
    platform, clock, _ = limited
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    assert [client.new_order(f"o{i}.limits.localhost").status_code for i in range(3)] == [201] * 3
    refused = client.new_order("o4.limits.localhost")
    assert refused.status_code == 429
    body = refused.json()
    assert body["type"] == ERR + "rateLimited" and body["status"] == 429
    assert "new-orders-per-account (3 per 1h)" in body["detail"]
    assert int(refused.headers["Retry-After"]) == 1200  # one unit frees up every 20 minutes
    assert refused.headers["Replay-Nonce"]
    other = RawClient(platform.directory("open"))
    assert other.new_account().status_code == 201
    assert other.new_order("other.limits.localhost").status_code == 201  # per account
    clock.advance(timedelta(minutes=20))
    assert client.new_order("o5.limits.localhost").status_code == 201


def test_new_accounts_per_tenant(limited):
    platform, clock, _ = limited
    clock.advance(timedelta(hours=2))  # a full bucket, whatever ran before
    created = [RawClient(platform.directory("open")).new_account() for _ in range(5)]
    assert [r.status_code for r in created] == [201] * 4 + [429]
    assert created[-1].json()["type"] == ERR + "rateLimited"
    # An existing account's key is not a new account: not limited.
    client = RawClient(platform.directory("open"))
    clock.advance(timedelta(minutes=15))
    assert client.new_account().status_code == 201
    assert client.new_account().status_code == 200


@pytest.fixture(scope="module")
def quota(backend, tmp_path_factory, http01, http01_port):
    from cptest.databases import database_url

    directory = tmp_path_factory.mktemp(f"quota-{backend}")
    with database_url(backend, directory) as url:
        limits = LimitsConfig(
            new_orders_per_account="", new_accounts_per_tenant="", certificates_per_tenant="10/1d"
        )
        config = make_config(directory, url, http01_port=http01_port, limits=limits)
        platform = provision(config, {"open": False})
        server = ServerThread(platform.config).start()
        try:
            yield platform, server
        finally:
            server.stop()


def test_quota_race_gives_exactly_the_remaining_certificates(quota, http01):
    """Fifty concurrent finalizes against a quota of ten: exactly ten certificates, forty
    rateLimited answers with Retry-After, orders of the refused still ready."""
    from concurrent.futures import ThreadPoolExecutor

    from cptest.csr import csr_der
    from cptest.jwsclient import b64

    platform, server = quota
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    orders = [answered_order(client, http01, f"q{i}.quota.localhost") for i in range(50)]
    server.drain()

    def finalize(order):
        names = [i["value"] for i in order["identifiers"]]
        return RawClient(client.directory_url, key=client.key, kid=client.kid).post(
            order["finalize"], {"csr": b64(csr_der(names))}
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(finalize, orders))
    server.drain()
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert all(
        r.json()["type"] == ERR + "rateLimited" and r.headers["Retry-After"] for r in refused
    )
    states = [client.post(o["url"]).json()["status"] for o in orders]
    assert states.count("valid") == 10 and states.count("ready") == 40


def test_a_failed_issuance_gives_its_quota_unit_back(quota, http01):
    """Ten orders whose issuance the CA refuses (outside the issuer's name constraints) end
    invalid and give their units back; ten good orders after them still fit the quota."""
    from cptest.csr import csr_der
    from cptest.jwsclient import b64

    from certplane.ca.keys.api import KeyAlgorithm
    from certplane.server.ra.provisioning import IssuerSpec

    platform, server = quota
    spec = IssuerSpec(KeyAlgorithm.EC_P256, permitted_dns_names=("in.narrow.localhost",))
    server.call(
        lambda: server.provisioner().create_tenant("narrow", "N", eab_required=False, spec=spec)
    )
    client = RawClient(platform.directory("narrow"))
    assert client.new_account().status_code == 201

    def finalized(name: str) -> str:
        order = answered_order(client, http01, name)
        server.drain()
        answer = client.post(order["finalize"], {"csr": b64(csr_der([name]))})
        assert answer.status_code == 200, answer.text
        server.drain()
        return client.post(order["url"]).json()["status"]

    assert [finalized(f"o{i}.out.narrow.localhost") for i in range(10)] == ["invalid"] * 10
    assert [finalized(f"o{i}.in.narrow.localhost") for i in range(10)] == ["valid"] * 10
    with pytest.raises(AssertionError, match="rateLimited"):
        finalized("eleventh.in.narrow.localhost")  # the quota is spent now


def test_a_tenant_override_replaces_the_configured_limit(limited):
    """Per-tenant overrides (a plan, a deal): tighter, off, then back to the configuration."""
    from certplane.server.ra.provisioning import ProvisioningError

    platform, clock, server = limited

    def set_limits(changes):
        return server.call(lambda: server.provisioner().set_tenant_limits("open", changes))

    clock.advance(timedelta(hours=2))
    tenant = set_limits({"new-orders-per-account": "1/1h"})
    assert tenant.limit_overrides == {"new-orders-per-account": "1/1h"}
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    assert client.new_order("first.override.localhost").status_code == 201
    refused = client.new_order("second.override.localhost")
    assert refused.status_code == 429 and "(1 per 1h)" in refused.json()["detail"]
    set_limits({"new-orders-per-account": ""})  # off for this tenant
    assert all(client.new_order(f"n{i}.override.localhost").status_code == 201 for i in range(5))
    set_limits({"new-orders-per-account": None})  # back to the configuration (3/1h, spent)
    assert client.new_order("back.override.localhost").status_code == 429
    with pytest.raises(ProvisioningError, match="unknown limit"):
        set_limits({"orders-per-year": "1/1d"})
    with pytest.raises(ProvisioningError, match="COUNT/PERIOD"):
        set_limits({"new-orders-per-account": "lots"})


def test_new_accounts_per_client_ip(limited):
    """Per client address (here 127.0.0.1), beside the tenant-wide limit (off for this test)."""
    platform, clock, server = limited
    clock.advance(timedelta(hours=2))
    server.call(
        lambda: server.provisioner().set_tenant_limits("open", {"new-accounts-per-tenant": ""})
    )
    try:
        created = [RawClient(platform.directory("open")).new_account() for _ in range(7)]
        assert [r.status_code for r in created] == [201] * 6 + [429], [r.text for r in created]
        assert "new-accounts-per-ip (6 per 1h)" in created[-1].json()["detail"]
    finally:
        server.call(
            lambda: server.provisioner().set_tenant_limits(
                "open", {"new-accounts-per-tenant": None}
            )
        )


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("192.0.2.7", "ip:192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", "ip:2001:db8:1:2::/64"),
        ("not-an-address", "ip:not-an-address"),
    ],
)
def test_ip_subjects_group_ipv6_by_slash_64(address, subject):
    from certplane.server.ra.limits import ip_subject

    assert ip_subject(address) == subject
