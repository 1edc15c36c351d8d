"""Tiers, per-tenant overrides and the limits of newOrder beyond the order rate: pending
authorizations, failed validations per identifier, ARI replacements (RFC 9773 §5) exempt from
the order rate, and a tenant's usage. On SQLite and PostgreSQL, with a fake clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cptest.csr import csr_der
from cptest.flows import answered_order
from cptest.jwsclient import ERR, RawClient, b64
from cptest.server import LIMITS_OFF, Platform, ServerThread, make_config, provision
from cryptography import x509

from certplane.server.app import SERVICES
from certplane.server.clock import FakeClock
from certplane.server.ra.ari import cert_id_of
from certplane.server.ra.limits import LimitUsage, rate_limits, usage
from certplane.server.ra.provisioning import ProvisioningError
from certplane.server.storage.scope import TenantScope

TIERS = {
    "small": {"new_orders_per_account": "2/1h"},
    "big": {"certificates_per_tenant": "100/30d", "new_accounts_per_tenant": "10/1h"},
}
TENANTS = ("tiers", "pending", "failures", "ari", "usage")


@dataclasses.dataclass
class Setup:
    platform: Platform
    clock: FakeClock
    server: ServerThread

    def provisioner(self, method: str, *args: Any) -> Any:
        return self.server.call(lambda: getattr(self.server.provisioner(), method)(*args))

    def client(self, slug: str) -> RawClient:
        client = RawClient(self.platform.directory(slug))
        assert client.new_account().status_code == 201
        return client


@pytest.fixture(scope="module")
def setup(backend, tmp_path_factory, http01, http01_port) -> Iterator[Setup]:
    from cptest.databases import database_url

    directory = tmp_path_factory.mktemp(f"tiers-{backend}")
    with database_url(backend, directory) as url:
        limits = dataclasses.replace(
            LIMITS_OFF,
            new_orders_per_account="5/1h",
            concurrent_issuance_per_tenant="7",
            tiers=TIERS,
        )
        config = make_config(directory, url, http01_port=http01_port, limits=limits)
        platform = provision(config, dict.fromkeys(TENANTS, False))
        clock = FakeClock()
        server = ServerThread(platform.config, clock=clock).start()
        try:
            yield Setup(platform, clock, server)
        finally:
            server.stop()
        assert not server.sql_guard.violations, server.sql_guard.violations


def _orders_until_refused(client: RawClient, slug: str, most: int = 12):
    """How many newOrders pass before the first refusal, and the refusal (None: none)."""
    for i in range(most):
        response = client.new_order(f"o{i}.{slug}.localhost")
        if response.status_code != 201:
            return i, response
    return most, None


def _refused(response, name: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == ERR + "rateLimited" and body["status"] == 429
    assert f"limit {name}" in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    return body


def test_configuration_then_tier_then_override(setup):
    """new-orders-per-account: 5/1h configured, 2/1h on tier small, 3/1h as an override."""

    def burst() -> tuple[int, Any]:
        return _orders_until_refused(setup.client("tiers"), "tiers")

    try:
        passed, refused = burst()
        assert passed == 5 and "(5 per 1h)" in _refused(refused, "new-orders-per-account")["detail"]
        tenant = setup.provisioner("set_tenant_tier", "tiers", "small")
        assert tenant.tier == "small"
        client = setup.client("tiers")
        passed, refused = _orders_until_refused(client, "tiers")
        assert passed == 2 and "(2 per 1h)" in _refused(refused, "new-orders-per-account")["detail"]
        assert refused.headers["Retry-After"] == "1800"  # one order frees up every 30 minutes
        setup.clock.advance(timedelta(minutes=30))
        assert client.new_order("later.tiers.localhost").status_code == 201
        assert client.new_order("again.tiers.localhost").status_code == 429
        setup.provisioner("set_tenant_limits", "tiers", {"new-orders-per-account": "3/1h"})
        passed, refused = burst()
        assert passed == 3 and "(3 per 1h)" in _refused(refused, "new-orders-per-account")["detail"]
        setup.provisioner("set_tenant_limits", "tiers", {"new-orders-per-account": ""})
        assert burst() == (12, None)  # off for this tenant, whatever its tier says
        setup.provisioner("set_tenant_limits", "tiers", {"new-orders-per-account": None})
        assert burst()[0] == 2  # the tier again
        assert setup.provisioner("set_tenant_tier", "tiers", "").tier == ""
        assert burst()[0] == 5  # the configuration again
    finally:
        setup.provisioner("set_tenant_tier", "tiers", "")
        setup.provisioner("set_tenant_limits", "tiers", {"new-orders-per-account": None})


def test_an_unknown_tier_is_refused_and_changes_nothing(setup):
    with pytest.raises(ProvisioningError, match=r"unknown tier 'platinum' \(known: big, small\)"):
        setup.provisioner("set_tenant_tier", "tiers", "platinum")
    assert setup.provisioner("tenant", "tiers").tier == ""
    with pytest.raises(ProvisioningError, match="tenant"):
        setup.provisioner("set_tenant_tier", "no-such-tenant", "small")


def test_a_tier_change_is_an_event(setup):
    async def events() -> list[dict[str, Any]]:
        services = setup.server.app[SERVICES]
        async with services.uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug("usage")
        async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            return await tx.events.for_object("tenant", tenant.id)

    setup.provisioner("set_tenant_tier", "usage", "big")
    setup.provisioner("set_tenant_tier", "usage", "")
    changes = {
        (e["type"], e["actor"], e["data"]["tier"])
        for e in setup.server.call(events)
        if "tier" in e["data"]
    }
    assert changes >= {("tenant.updated", "operator", "big"), ("tenant.updated", "operator", "")}


def test_pending_authorizations_per_account(setup):
    """A cap, not a rate: refused while the account holds 3 pending authorizations, until one
    is deactivated or expires (Retry-After: when the oldest expires)."""
    setup.provisioner("set_tenant_limits", "pending", {"pending-authorizations-per-account": "3"})
    client = setup.client("pending")
    first = client.new_order("p1.pending.localhost", "p2.pending.localhost")
    assert first.status_code == 201
    assert client.new_order("p3.pending.localhost").status_code == 201
    refused = client.new_order("p4.pending.localhost")
    body = _refused(refused, "pending-authorizations-per-account (3)")
    assert "3 pending authorizations" in body["detail"]
    assert refused.headers["Retry-After"] == str(7 * 86400)  # the pending authz lifetime
    assert client.new_order("p1.pending.localhost").status_code == 429  # even a reuse
    other = setup.client("pending")
    assert other.new_order("p4.pending.localhost").status_code == 201  # per account
    authz = first.json()["authorizations"][0]
    assert client.post(authz, {"status": "deactivated"}).json()["status"] == "deactivated"
    assert client.new_order("p4.pending.localhost").status_code == 201  # one freed up
    assert client.new_order("p5.pending.localhost").status_code == 429
    setup.clock.advance(timedelta(days=7, seconds=1))  # every one of them expired
    assert client.new_order("p5.pending.localhost").status_code == 201


def _fail_validation(setup: Setup, client: RawClient, name: str) -> None:
    """newOrder for ``name`` and its http-01 challenge answered with nothing served: invalid."""
    order = client.new_order(name)
    assert order.status_code == 201, order.text
    authz_url = order.json()["authorizations"][0]
    chall = next(c for c in client.post(authz_url).json()["challenges"] if c["type"] == "http-01")
    assert client.post(chall["url"], {}).status_code == 200
    setup.server.drain()
    assert client.post(authz_url).json()["status"] == "invalid"


def test_failed_validations_per_identifier_per_account(setup, http01):
    setup.provisioner(
        "set_tenant_limits", "failures", {"failed-validations-per-identifier-per-account": "2/1h"}
    )
    bad, good = "bad.failures.localhost", "good.failures.localhost"
    client = setup.client("failures")
    for _ in range(2):
        _fail_validation(setup, client, bad)
    refused = client.new_order(good, bad)
    body = _refused(refused, "failed-validations-per-identifier-per-account (2 per 1h)")
    assert f"reached for dns:{bad};" in body["detail"]
    assert refused.headers["Retry-After"] == "1800"
    assert body["subproblems"] == [
        {
            "type": ERR + "rateLimited",
            "detail": body["subproblems"][0]["detail"],
            "identifier": {"type": "dns", "value": bad},
        }
    ]
    assert f"failed validations of dns:{bad}" in body["subproblems"][0]["detail"]
    assert client.new_order(f"*.{bad}").status_code == 429  # a wildcard counts with its base
    assert client.new_order(good).status_code == 201  # other identifiers are not refused
    assert setup.client("failures").new_order(bad).status_code == 201  # nor other accounts
    setup.clock.advance(timedelta(minutes=30))  # one failure's worth frees up
    assert client.new_order(bad).status_code == 201


def _issue(setup: Setup, http01, client: RawClient, name: str) -> x509.Certificate:
    order = answered_order(client, http01, name)
    setup.server.drain()
    answer = client.post(order["finalize"], {"csr": b64(csr_der([name]))})
    assert answer.status_code == 200 and answer.json()["status"] == "valid", answer.text
    pem = client.post(answer.json()["certificate"]).content
    return x509.load_pem_x509_certificate(pem)


def _replacing(client: RawClient, name: str, replaces: Any):
    payload = {"identifiers": [{"type": "dns", "value": name}], "replaces": replaces}
    return client.post(client.directory["newOrder"], payload)


def _malformed(response, detail: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == ERR + "malformed" and detail in body["detail"], body


def test_an_ari_replacement_is_exempt_from_the_order_rate(setup, http01):
    setup.provisioner("set_tenant_limits", "ari", {"new-orders-per-account": "1/1h"})
    client, other = setup.client("ari"), setup.client("ari")
    name = "a.ari.localhost"
    mine = _issue(setup, http01, client, name)
    _issue(setup, http01, other, "b.ari.localhost")
    _refused(client.new_order(name), "new-orders-per-account")
    replacement = _replacing(client, name, cert_id_of(mine))
    assert replacement.status_code == 201, replacement.text
    assert replacement.json()["identifiers"] == [{"type": "dns", "value": name}]
    _refused(client.new_order(name), "new-orders-per-account")  # still spent for the rest
    _refused(_replacing(other, "b.ari.localhost", None), "new-orders-per-account")  # absent


def test_replaces_must_name_a_certificate_of_the_account(setup, http01):
    setup.provisioner("set_tenant_limits", "ari", {"new-orders-per-account": "1/1h"})
    client, other = setup.client("ari"), setup.client("ari")
    mine = _issue(setup, http01, client, "c.ari.localhost")
    theirs = _issue(setup, http01, other, "d.ari.localhost")
    key_id, serial = cert_id_of(mine).split(".")
    _malformed(_replacing(client, "c.ari.localhost", 12), "replaces must be a string")
    _malformed(
        _replacing(client, "c.ari.localhost", "not-a-cert-id"),
        "replaces is not an ARI CertID (RFC 9773 §4.1): expected base64url(keyIdentifier)",
    )
    _malformed(
        _replacing(client, "c.ari.localhost", f"{key_id}=.{serial}"),
        "the keyIdentifier is not unpadded base64url",
    )
    not_ours = "replaces does not name a certificate issued to this account"
    _malformed(_replacing(client, "d.ari.localhost", cert_id_of(theirs)), not_ours)
    _malformed(_replacing(client, "c.ari.localhost", f"AAAAAAAAAAAAAAAAAAAAAAAAAAA.{serial}"),
               not_ours)  # fmt: skip
    _malformed(_replacing(client, "c.ari.localhost", f"{key_id}.AQ"), not_ours)  # serial 1
    _malformed(
        _replacing(client, "unrelated.ari.localhost", cert_id_of(mine)),
        "replaces names a certificate with none of this order's identifiers",
    )
    assert _replacing(client, "c.ari.localhost", cert_id_of(mine)).status_code == 201


def _usage(setup: Setup, slug: str) -> dict[str, LimitUsage]:
    limits = rate_limits(setup.platform.config.limits)

    async def read() -> list[LimitUsage]:
        services = setup.server.app[SERVICES]
        async with services.uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(slug)
        async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            return await usage(tx, limits.for_tenant(tenant), setup.clock.now())

    return {u.name: u for u in setup.server.call(read)}


def test_usage_of_the_tenant_wide_limits(setup, http01):
    setup.provisioner("set_tenant_tier", "usage", "big")
    try:
        before = _usage(setup, "usage")
        assert before == {
            "certificates-per-tenant": LimitUsage(
                "certificates-per-tenant", "100/30d", "tier:big", 100, None
            ),
            "new-accounts-per-tenant": LimitUsage(
                "new-accounts-per-tenant", "10/1h", "tier:big", 10, None
            ),
            "concurrent-issuance-per-tenant": LimitUsage(
                "concurrent-issuance-per-tenant", "7", "config", 7, None
            ),
        }
        client = setup.client("usage")
        now = setup.clock.now()
        for name in ("u1.usage.localhost", "u2.usage.localhost"):
            _issue(setup, http01, client, name)
        after = _usage(setup, "usage")
        assert after["certificates-per-tenant"].remaining == 98
        assert after["certificates-per-tenant"].resets_at == now + timedelta(hours=14.4)
        assert after["new-accounts-per-tenant"].remaining == 9
        assert after["new-accounts-per-tenant"].resets_at == now + timedelta(minutes=6)
        setup.provisioner("set_tenant_limits", "usage", {"certificates-per-tenant": "50/1d"})
        tighter = _usage(setup, "usage")["certificates-per-tenant"]
        assert (tighter.rate, tighter.source, tighter.remaining) == ("50/1d", "override", 20)
        setup.clock.advance(timedelta(hours=7.2))
        assert _usage(setup, "usage")["certificates-per-tenant"].remaining == 35
        setup.provisioner("set_tenant_limits", "usage", {"certificates-per-tenant": ""})
        assert "certificates-per-tenant" not in _usage(setup, "usage")  # off
    finally:
        setup.provisioner("set_tenant_tier", "usage", "")
        setup.provisioner("set_tenant_limits", "usage", {"certificates-per-tenant": None})
