"""RFC 8555 §7.5: identifier authorization."""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, new_order, problem, unique


@pytest.fixture(scope="module")
def client(target):
    return account(target)


@pytest.fixture
def authz(client):
    name = unique()
    order = new_order(client, name)
    url = order["authorizations"][0]
    return url, name, client.post(url).json()


def test_authorization_object(authz):
    """§7.1.4: an authorization has "identifier", "status" ("pending" at first), "challenges"."""
    _, name, body = authz
    assert body["identifier"] == {"type": "dns", "value": name}
    assert body["status"] == "pending"
    assert body["challenges"]


def test_pending_authorization_has_expires(authz):
    """§7.1.4: "expires" is REQUIRED for objects with "valid" status and present here in
    practice; when present it is an RFC 3339 timestamp."""
    body = authz[2]
    if "expires" in body:
        assert "T" in body["expires"]


@pytest.mark.parametrize("field", ["type", "url", "status", "token"])
def test_challenge_fields(authz, field):
    """§8: each challenge has "type", "url", "status"; §8.3/§8.4 http-01 and dns-01 have a
    "token"."""
    for chall in authz[2]["challenges"]:
        if field == "token" and chall["type"] not in ("http-01", "dns-01", "tls-alpn-01"):
            continue
        assert chall[field]


def test_challenges_start_pending(authz):
    """§7.1.6: challenge objects are created in the "pending" state."""
    assert {c["status"] for c in authz[2]["challenges"]} == {"pending"}


def test_token_has_enough_entropy(authz):
    """§8.3: the token "MUST NOT contain any characters outside the base64url alphabet" and
    "SHOULD contain at least 128 bits of entropy"."""
    import re

    for chall in authz[2]["challenges"]:
        token = chall.get("token", "")
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", token), token


def test_http01_and_dns01_offered(authz):
    """§8: a server offers http-01 and dns-01 for a non-wildcard DNS identifier."""
    types = {c["type"] for c in authz[2]["challenges"]}
    assert {"http-01", "dns-01"} <= types


def test_wildcard_authorization(client):
    """§7.1.4: for a wildcard order the authorization's identifier has the "*." removed and
    "wildcard": true; §8.4 only dns-01 may be used for it."""
    base = unique("wild")
    order = new_order(client, "*." + base)
    body = client.post(order["authorizations"][0]).json()
    assert body["identifier"]["value"] == base
    assert body.get("wildcard") is True
    assert {c["type"] for c in body["challenges"]} == {"dns-01"}


def test_deactivate_authorization(authz, client):
    """§7.5.2: "the client ... sends a POST request to the authorization URL with a "status"
    field of "deactivated"; the server responds with the updated authorization."""
    url = authz[0]
    response = client.post(url, {"status": "deactivated"})
    assert response.status_code == 200
    assert response.json()["status"] == "deactivated"


def test_deactivated_authorization_makes_order_invalid(client):
    """§7.1.6: an order whose authorization is deactivated becomes "invalid"."""
    order = new_order(client, unique())
    client.post(order["authorizations"][0], {"status": "deactivated"})
    assert client.post(order["url"]).json()["status"] == "invalid"


def test_authorization_update_other_than_deactivate_is_refused(authz, client):
    """§7.5.2: only "deactivated" may be requested by a client."""
    response = client.post(authz[0], {"status": "valid"})
    problem(response, "malformed", 400)


def test_authorization_of_another_account_is_hidden(target, authz):
    """§7.5 / §6.2: an authorization is visible only to the account that owns it."""
    other = account(target)
    response = other.post(authz[0])
    assert response.status_code in (403, 404)
    problem(response)


def test_unknown_authorization_is_404(authz, client):
    """§7.5: an authorization URL that does not exist is 404 with a problem document."""
    response = client.post(authz[0] + "0nope")
    assert response.status_code == 404
    problem(response)
