"""RFC 8555 §7.3: account management."""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, needs_eab, problem, raw_client


@pytest.fixture(scope="module")
def client(target):
    return account(target, contact=["mailto:ops@example.com"])


def test_new_account_is_201_with_location(target):
    """§7.3: "the server returns this account object in a 201 (Created) response, with the
    account URL in a Location header field"."""
    client = raw_client(target)
    if needs_eab(client):
        pytest.skip("directory requires EAB")
    response = client.new_account()
    assert response.status_code == 201
    assert response.headers["Location"].startswith(("http://", "https://"))
    assert response.json()["status"] == "valid"


def test_account_object_has_orders_url(client):
    """§7.1.2: account objects have "status" and "orders" ("The server MUST provide the orders
    field")."""
    body = client.post(client.kid).json()
    assert body["status"] == "valid"
    assert body["orders"].startswith(("http://", "https://"))


def test_account_contact_is_returned(client):
    """§7.3: the account object echoes the contact URLs the server accepted."""
    assert client.post(client.kid).json().get("contact") == ["mailto:ops@example.com"]


def test_existing_key_returns_200_and_same_location(client):
    """§7.3.1: "If the server already has an account registered with the provided account key,
    then it MUST return a response with status code 200 (OK) and provide the URL of that
    account in the Location header field"."""
    response = client.post(
        client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    assert response.status_code == 200
    assert response.headers["Location"] == client.kid


def test_only_return_existing_finds_the_account(client):
    """§7.3.1: with "onlyReturnExisting": true and a known key the server returns the account."""
    response = client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    assert response.status_code == 200
    assert response.headers["Location"] == client.kid


def test_only_return_existing_unknown_key(target):
    """§7.3.1: "If this field is present with the value "true", then the server MUST NOT create
    a new account if one does not already exist" and returns accountDoesNotExist."""
    client = raw_client(target)
    response = client.post(
        client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True
    )
    problem(response, "accountDoesNotExist", 400)


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param(["ftp://example.com"], id="ftp"),
        pytest.param(["https://example.com"], id="https"),
        pytest.param(["tel:+15551234"], id="tel"),
    ],
)
def test_unsupported_contact_scheme(target, contact):
    """§7.3: "If the server rejects a contact URL for using an unsupported scheme, it MUST
    return an error of type "unsupportedContact"."""
    client = raw_client(target)
    if needs_eab(client):
        pytest.skip("directory requires EAB")
    response = client.new_account(contact=contact)
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("unsupportedContact", "invalidContact")


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param(["mailto:"], id="empty-address"),
        pytest.param(["mailto:not-an-address"], id="no-at"),
        pytest.param(["mailto:a@example.com,b@example.com"], id="two-addresses"),
        pytest.param(["mailto:a@example.com?subject=x"], id="hfields"),
    ],
)
def test_invalid_mailto_contact(target, contact):
    """§7.3: "If the server rejects a contact URL for using an unsupported scheme... If the
    contact URL is invalid, invalidContact"; §7.3: mailto "MUST NOT contain hfields" and exactly
    one addr-spec."""
    client = raw_client(target)
    if needs_eab(client):
        pytest.skip("directory requires EAB")
    response = client.new_account(contact=contact)
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("invalidContact", "unsupportedContact")


def test_update_contact(client):
    """§7.3.2: "the client sends a POST request to the account URL" with updated fields."""
    response = client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    assert response.status_code == 200
    assert response.json()["contact"] == ["mailto:new@example.com"]


def test_update_ignores_orders_field(client):
    """§7.3.2: "Servers SHOULD NOT respond with an error" for fields they ignore; "orders" is
    server-controlled and cannot be changed by the client."""
    before = client.post(client.kid).json()["orders"]
    response = client.post(client.kid, {"orders": "https://evil.example/orders"})
    assert response.status_code == 200
    assert response.json()["orders"] == before


def test_update_echoing_the_account_object_is_accepted(client):
    """§7.3.2: a client may send the account object back with changed contacts; its unchanged
    "status": "valid" is not a status change (certbot's acme library does exactly this)."""
    current = client.post(client.kid).json()
    body = {**current, "contact": ["mailto:echo@example.com"]}
    response = client.post(client.kid, body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "valid"
    assert response.json()["contact"] == ["mailto:echo@example.com"]


def test_orders_list(client):
    """§7.1.2.1: the orders URL returns an object with an "orders" array of order URLs."""
    response = client.new_order("list.example.com")
    orders_url = client.post(client.kid).json()["orders"]
    body = client.post(orders_url).json()
    assert isinstance(body["orders"], list)
    assert body["orders"], body
    assert response.status_code == 201


def test_account_of_another_key_is_unauthorized(target, client):
    """§7.3.2 / §6.2: a request for an account URL signed by a different account is refused."""
    other = account(target)
    response = other.post(client.kid, {"contact": ["mailto:x@example.com"]})
    assert response.status_code in (403, 404)
    problem(response)


def test_deactivate_account(target):
    """§7.3.6: "a client can deactivate an account by posting a signed update to the account URL
    with a status field of "deactivated"; the server responds with the account object."""
    client = account(target)
    response = client.post(client.kid, {"status": "deactivated"})
    assert response.status_code == 200
    assert response.json()["status"] == "deactivated"


def test_deactivated_account_is_refused(target):
    """§7.3.6: "If the server receives a POST or POST-as-GET from a deactivated account, it
    MUST return an error response with status code 401 (Unauthorized) and type
    urn:ietf:params:acme:error:unauthorized"."""
    client = account(target)
    assert client.post(client.kid, {"status": "deactivated"}).status_code == 200
    response = client.new_order("gone.example.com")
    problem(response, "unauthorized", 401)


def test_deactivated_account_key_cannot_re_register(target):
    """§7.3.6: "the server MUST NOT accept further requests authorized by that account's key";
    newAccount with the same key does not resurrect it (401 as for any deactivated account)."""
    client = account(target)
    assert client.post(client.kid, {"status": "deactivated"}).status_code == 200
    response = client.post(
        client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    problem(response, "unauthorized", 401)


def test_invalid_status_update_is_malformed(client):
    """§7.3.6: only "deactivated" is a client-settable status; "revoked" is refused."""
    response = client.post(client.kid, {"status": "revoked"})
    problem(response, "malformed", 400)


def test_contact_not_array_is_malformed(target):
    """§7.1.2: "contact" is an array of strings; anything else is malformed."""
    client = raw_client(target)
    if needs_eab(client):
        pytest.skip("directory requires EAB")
    response = client.new_account(contact="mailto:ops@example.com")
    problem(response, "malformed", 400)
