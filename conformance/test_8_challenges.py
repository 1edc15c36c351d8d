"""RFC 8555 §8: challenges, validated against the lab's DNS and loopback responders."""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, authorize, dns01_value, need_lab, new_order, unique


@pytest.fixture(scope="module")
def client(target):
    need_lab(target)
    return account(target)


def challenge(client, order, ctype):
    authz = client.post(order["authorizations"][0]).json()
    return authz, next(c for c in authz["challenges"] if c["type"] == ctype)


@pytest.mark.parametrize("ctype", ["http-01", "dns-01"])
def test_challenge_validates(target, client, ctype):
    """§7.5.1: the client POSTs {} to the challenge URL; §8.3/§8.4 the server validates and the
    challenge, authorization and order become valid/ready."""
    order = authorize(target, client, new_order(client, unique(ctype[:4])), ctype)
    assert order["status"] == "ready"
    authz = client.post(order["authorizations"][0]).json()
    assert authz["status"] == "valid"
    chall = next(c for c in authz["challenges"] if c["type"] == ctype)
    assert chall["status"] == "valid"
    assert "validated" in chall


def test_wildcard_with_dns01(target, client):
    """§8.4 / §7.1.3: a wildcard identifier is authorized by dns-01 on the base name."""
    base = unique("wild")
    order = authorize(target, client, new_order(client, "*." + base), "dns-01")
    assert order["status"] == "ready"


def test_challenge_response_is_the_challenge(target, client):
    """§7.5.1: "The server ... responds with the challenge object" (200) to the POST of {}."""
    order = new_order(client, unique())
    _, chall = challenge(client, order, "http-01")
    target.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
    response = client.post(chall["url"], {})
    assert response.status_code == 200
    assert response.json()["type"] == "http-01"
    assert response.json()["status"] in ("pending", "processing", "valid")
    assert response.links.get("up", {}).get("url") == order["authorizations"][0]


def test_wrong_http01_response_is_invalid(target, client):
    """§8.3: "the server MUST ... verify that the body ... is the key authorization"; a wrong
    body makes the challenge invalid with an error (incorrectResponse / unauthorized)."""
    order = new_order(client, unique())
    _, chall = challenge(client, order, "http-01")
    target.http01.tokens[chall["token"]] = "wrong"
    client.post(chall["url"], {})
    body = client.poll(chall["url"], ("valid", "invalid"))
    assert body["status"] == "invalid"
    assert body["error"]["type"].rsplit(":", 1)[1] in ("unauthorized", "incorrectResponse")


def test_missing_http01_response_is_invalid(target, client):
    """§8.3: no resource at the well-known path: the challenge is invalid with an error."""
    order = new_order(client, unique())
    _, chall = challenge(client, order, "http-01")
    client.post(chall["url"], {})
    body = client.poll(chall["url"], ("valid", "invalid"))
    assert body["status"] == "invalid"
    assert body["error"]["type"].startswith("urn:ietf:params:acme:error:")


def test_wrong_dns01_record_is_invalid(target, client):
    """§8.4: "the server ... verifies that the contents of one of the TXT records match the
    digest value"; a wrong record fails the challenge."""
    name = unique()
    order = new_order(client, name)
    _, chall = challenge(client, order, "dns-01")
    target.lab.set_txt(f"_acme-challenge.{name}", dns01_value("wrong"))
    client.post(chall["url"], {})
    body = client.poll(chall["url"], ("valid", "invalid"))
    assert body["status"] == "invalid"


def test_failed_challenge_invalidates_authz_and_order(target, client):
    """§7.1.6: a failed challenge makes the authorization "invalid", and so the order."""
    order = new_order(client, unique())
    _, chall = challenge(client, order, "http-01")
    client.post(chall["url"], {})
    client.poll(chall["url"], ("valid", "invalid"))
    authz = client.poll(order["authorizations"][0], ("valid", "invalid"))
    assert authz["status"] == "invalid"
    assert client.poll(order["url"], ("invalid",))["status"] == "invalid"


def test_dns01_value_is_sha256_of_key_authorization(target, client):
    """§8.4: the TXT record is base64url(SHA-256(key authorization)); the server accepts that
    and only that (validated positively in test_challenge_validates[dns-01])."""
    order = authorize(target, client, new_order(client, unique()), "dns-01")
    assert order["status"] == "ready"
