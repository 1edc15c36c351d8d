"""Accounts (RFC 8555 §7.3): creation, EAB (§7.3.4), update, deactivation, key change (§7.3.5)."""

from __future__ import annotations

import json

import pytest
from cptest.jwsclient import ERR, RawClient, b64, eab_binding, flattened, problem
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _type(response) -> str:
    return problem(response)["type"].removeprefix(ERR)


def _eab(server, slug="alpha"):
    return server.call(lambda: server.provisioner().create_eab(slug, "test"))


def test_new_account_returns_201_location_and_account_object(server, platform):
    client = RawClient(platform.directory("open"))
    response = client.new_account(contact=["mailto:ops@example.com"])
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"].startswith(
        f"{platform.config.server.base_url}/acme/open/acct/"
    )
    assert body["status"] == "valid"
    assert body["contact"] == ["mailto:ops@example.com"]
    assert body["orders"] == response.headers["Location"] + "/orders"


def test_existing_key_returns_200_and_the_same_account(server, platform):
    client = RawClient(platform.directory("open"))
    first = client.new_account()
    again = client.post(
        client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    assert again.status_code == 200
    assert again.headers["Location"] == first.headers["Location"]


def test_only_return_existing(server, platform):
    client = RawClient(platform.directory("open"))
    missing = client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    assert _type(missing) == "accountDoesNotExist"
    created = client.new_account()
    found = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert found.status_code == 200 and found.headers["Location"] == created.headers["Location"]


@pytest.mark.parametrize(
    ("contact", "kind"),
    [
        (["tel:+12025550123"], "unsupportedContact"),
        (["https://example.com"], "unsupportedContact"),
        (["mailto:a@example.com,b@example.com"], "invalidContact"),
        (["mailto:a@example.com?subject=x"], "invalidContact"),
        (["mailto:not-an-address"], "invalidContact"),
        (["mailto:" + "a" * 300 + "@example.com"], "invalidContact"),
        ("mailto:a@example.com", "malformed"),
        ([1], "malformed"),
    ],
)
def test_bad_contacts(server, platform, contact, kind):
    client = RawClient(platform.directory("open"))
    assert _type(client.new_account(contact=contact)) == kind


def test_non_boolean_flags_are_malformed(server, platform):
    client = RawClient(platform.directory("open"))
    assert _type(client.new_account(termsOfServiceAgreed="yes")) == "malformed"


def test_weak_rsa_account_key_is_bad_public_key(server, platform):
    client = RawClient(platform.directory("open"), key=rsa.generate_private_key(65537, 1024))
    assert _type(client.new_account()) == "badPublicKey"


def test_eab_required_missing_binding(server, platform):
    client = RawClient(platform.directory("alpha"))
    response = client.new_account()
    assert response.status_code == 403
    assert _type(response) == "externalAccountRequired"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_eab_binds_with_every_hmac(server, platform, alg):
    eab = _eab(server)
    client = RawClient(platform.directory("alpha"))
    url = client.directory["newAccount"]
    binding = eab_binding(eab.kid, eab.hmac_key, client.jwk, url, alg=alg)
    response = client.post(
        url, {"termsOfServiceAgreed": True, "externalAccountBinding": binding}, use_jwk=True
    )
    assert response.status_code == 201, response.text


def test_eab_key_is_single_use(server, platform):
    eab = _eab(server)
    assert RawClient(platform.directory("alpha")).new_account(eab=eab).status_code == 201
    second = RawClient(platform.directory("alpha")).new_account(eab=eab)
    assert _type(second) == "unauthorized"
    keys = server.call(lambda: server.provisioner().list_eab("alpha"))
    bound = next(k for k in keys if k.kid == eab.kid)
    assert bound.status.value == "bound" and bound.account_id


def test_eab_wrong_mac_is_unauthorized_and_key_stays_usable(server, platform):
    eab = _eab(server)
    client = RawClient(platform.directory("alpha"))
    url = client.directory["newAccount"]
    wrong = eab_binding(eab.kid, b64(b"k" * 32), client.jwk, url)
    response = client.post(url, {"externalAccountBinding": wrong}, use_jwk=True)
    assert _type(response) == "unauthorized"
    assert client.new_account(eab=eab).status_code == 201


def test_eab_revoked_key_is_refused(server, platform):
    eab = _eab(server)
    server.call(lambda: server.provisioner().revoke_eab("alpha", eab.kid))
    assert _type(RawClient(platform.directory("alpha")).new_account(eab=eab)) == "unauthorized"


def test_eab_structure_errors_are_malformed(server, platform):
    eab = _eab(server)
    client = RawClient(platform.directory("alpha"))
    url = client.directory["newAccount"]
    other = RawClient(platform.directory("alpha"))
    cases = [
        eab_binding(eab.kid, eab.hmac_key, client.jwk, url + "x"),
        eab_binding(eab.kid, eab.hmac_key, other.jwk, url),
        eab_binding(eab.kid, eab.hmac_key, client.jwk, url, alg="HS256") | {"header": {}},
        "not-a-jws",
    ]
    for binding in cases:
        response = client.post(url, {"externalAccountBinding": binding}, use_jwk=True)
        assert _type(response) == "malformed", binding


def test_update_contact_and_fetch(register):
    client = register("open")
    updated = client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    assert updated.status_code == 200
    assert updated.json()["contact"] == ["mailto:new@example.com"]
    fetched = client.post(client.kid)
    assert fetched.json()["contact"] == ["mailto:new@example.com"]


@pytest.mark.parametrize("status", ["revoked", "pending", "", 7])
def test_bad_status_update_is_malformed(register, status):
    client = register("open")
    assert _type(client.post(client.kid, {"status": status})) == "malformed"
    assert client.post(client.kid).json()["status"] == "valid"


def test_update_echoing_the_current_status_is_accepted(register):
    """certbot's acme library sends the whole account back: "status": "valid" is no change."""
    client = register("open")
    body = {"status": "valid", "contact": ["mailto:echo@example.com"]}
    response = client.post(client.kid, body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "valid"
    assert response.json()["contact"] == ["mailto:echo@example.com"]


def test_deactivation_is_final(register):
    client = register("open")
    response = client.post(client.kid, {"status": "deactivated"})
    assert response.status_code == 200 and response.json()["status"] == "deactivated"
    after = client.new_order("after.example.com")
    assert after.status_code == 401
    again = client.post(
        client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    assert again.status_code == 401 and _type(again) == "unauthorized"
    assert _type(after) == "unauthorized"


def test_account_url_of_another_account_is_not_found(register):
    a, b = register("open"), register("open")
    response = a.post(b.kid)
    assert response.status_code == 404


def _key_change(
    client: RawClient,
    new_key,
    *,
    inner_url=None,
    old_jwk=None,
    account=None,
    inner_extra=None,
    signer=None,
):
    url = client.directory["keyChange"]
    new_client = RawClient(client.directory_url, key=new_key)
    inner_payload = {"account": account or client.kid, "oldKey": old_jwk or client.jwk}
    protected = {"jwk": new_client.jwk, "url": inner_url or url, **(inner_extra or {})}
    inner = flattened(signer or new_key, protected, json.dumps(inner_payload).encode())
    return client.post(url, inner)


def test_key_change_rolls_the_key(register):
    client = register("open")
    new_key = ec.generate_private_key(ec.SECP256R1())
    response = _key_change(client, new_key)
    assert response.status_code == 200, response.text
    old_key, client.key = client.key, new_key
    assert client.post(client.kid).status_code == 200
    client.key = old_key
    assert _type(client.post(client.kid)) == "malformed"


def test_key_change_to_a_key_in_use_is_409_with_location(register):
    a, b = register("open"), register("open")
    response = _key_change(a, b.key)
    assert response.status_code == 409
    assert response.headers["Location"] == b.kid


@pytest.mark.parametrize("mutation", ["inner_url", "old_jwk", "account", "nonce", "signer"])
def test_key_change_checks(register, mutation):
    client = register("open")
    new_key = ec.generate_private_key(ec.SECP256R1())
    kwargs = {
        "inner_url": {"inner_url": client.directory["newOrder"]},
        "old_jwk": {"old_jwk": RawClient(client.directory_url).jwk},
        "account": {"account": client.kid + "x"},
        "nonce": {"inner_extra": {"nonce": client.nonce()}},
        "signer": {"signer": ec.generate_private_key(ec.SECP256R1())},
    }[mutation]
    assert _type(_key_change(client, new_key, **kwargs)) == "malformed"


def test_orders_list_paginates(register, server, platform):
    client = register("open")
    urls = [client.new_order(f"o{i}.example.com").headers["Location"] for i in range(5)]
    seen, url, pages = [], client.kid + "/orders", 0
    assert platform.config.acme.orders_page_size == 2
    while url and pages < 10:
        response = client.post(url)
        assert response.status_code == 200
        seen += response.json()["orders"]
        url = response.links.get("next", {}).get("url")
        pages += 1
    assert seen == urls
    assert pages == 3
