"""Multi-tenancy (certplane's promise beyond RFC 8555): tenants are separate ACME servers.

Skipped for targets without a second tenant directory.
"""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, new_order, problem, raw_client, unique


@pytest.fixture
def pair(target, second):
    return account(target), account(target, second)


def test_directories_differ(target, second):
    """Each tenant has its own directory with its own resource URLs."""
    a, b = raw_client(target).directory, raw_client(target, second).directory
    assert a["newOrder"] != b["newOrder"]


def test_second_tenant_requires_eab(target, second):
    """RFC 8555 §7.3.4: a directory with "externalAccountRequired" refuses a newAccount without
    a binding: "externalAccountRequired"."""
    client = raw_client(target, second)
    if not client.directory.get("meta", {}).get("externalAccountRequired"):
        pytest.skip("second tenant does not require EAB")
    problem(client.new_account(), "externalAccountRequired")


def test_foreign_nonce_is_bad_nonce(pair):
    """§6.5: a nonce is only valid at the server (tenant) that issued it."""
    a, b = pair
    response = a.post(a.kid, extra={"nonce": b.nonce()})
    problem(response, "badNonce", 400)


def test_foreign_kid_is_account_does_not_exist(pair):
    """A kid of another tenant's account names no account here."""
    a, b = pair
    response = a.post(a.directory["newOrder"], {"identifiers": []}, extra={"kid": b.kid})
    assert response.status_code in (400, 403, 404)
    problem(response)


@pytest.mark.parametrize("what", ["account", "order", "authz"])
def test_foreign_resources_are_not_found(pair, what):
    """A resource of another tenant is a uniform 404, whoever signs."""
    a, b = pair
    order = new_order(b, unique())
    url = {"account": b.kid, "order": order["url"], "authz": order["authorizations"][0]}[what]
    # The same resource id under tenant A's prefix: B's resource must not exist there.
    foreign = url.replace(b.directory_url.rsplit("/", 1)[0], a.directory_url.rsplit("/", 1)[0])
    assert foreign != url
    response = a.post(foreign)
    problem(response, status=404)


def test_same_key_is_two_accounts(target, second):
    """The same account key at two tenants makes two distinct accounts."""
    a = account(target)
    b = account(target, second, key=a.key)
    assert a.kid != b.kid
