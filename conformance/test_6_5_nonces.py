"""RFC 8555 §6.5 and §7.2: replay protection."""

from __future__ import annotations

import base64
import re

import pytest
from cptest.conf_acme import account, problem, raw_client
from cptest.jwsclient import b64

B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture(scope="module")
def client(target):
    return account(target)


def test_head_new_nonce_is_200_with_a_nonce(client):
    """§7.2: "The server MUST include a Replay-Nonce header field" in newNonce responses; HEAD
    returns 200."""
    response = client.session.head(client.directory["newNonce"], timeout=30)
    assert response.status_code == 200
    assert response.headers["Replay-Nonce"]


def test_get_new_nonce_is_204(client):
    """§7.2: a GET request to newNonce returns "204 (No Content)" with a fresh nonce."""
    response = client.get(client.directory["newNonce"])
    assert response.status_code == 204
    assert response.headers["Replay-Nonce"]


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_new_nonce_is_no_store(client, method):
    """§7.2: "The server MUST include a Cache-Control header field with the "no-store"
    directive in responses for the newNonce resource"."""
    response = client.session.request(method, client.directory["newNonce"], timeout=30)
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_nonce_is_base64url(client):
    """§6.5.1: "The value of the Replay-Nonce header field MUST be an octet string encoded
    according to the base64url encoding"."""
    nonce = client.nonce()
    assert B64URL.match(nonce), nonce
    base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))


def test_nonces_are_unique(client):
    """§6.5: nonces are "unique to each message" — 25 fresh nonces are all different."""
    nonces = {client.nonce() for _ in range(25)}
    assert len(nonces) == 25


def test_nonce_works_on_any_resource(client):
    """§6.5: a nonce from newNonce is accepted on a POST to any resource."""
    assert client.post(client.kid).status_code == 200


def test_successful_post_returns_a_fresh_nonce(client):
    """§6.5: "The server MUST include a Replay-Nonce header field in every successful response
    to a POST request"; the nonce it returns is usable."""
    first = client.post(client.kid)
    nonce = first.headers["Replay-Nonce"]
    again = client.post(client.kid, extra={"nonce": nonce})
    assert again.status_code == 200


def test_replayed_nonce_is_bad_nonce(client):
    """§6.5: "When a server rejects a request because its nonce value was unacceptable (or not
    present), it MUST provide HTTP status code 400 (Bad Request), and indicate the ACME error
    type "urn:ietf:params:acme:error:badNonce"."""
    url = client.kid
    body = client.body(url, None)
    import json

    data = json.dumps(body).encode()
    assert client.post_raw(url, data).status_code == 200
    problem(client.post_raw(url, data), "badNonce", 400)


def test_bad_nonce_error_carries_a_usable_fresh_nonce(client):
    """§6.5: "An error response with the "badNonce" error type MUST include a Replay-Nonce
    header field with a fresh nonce that the server will accept in a retry"."""
    response = client.post(client.kid, extra={"nonce": b64(b"x" * 32)})
    problem(response, "badNonce", 400)
    retry = client.post(client.kid, extra={"nonce": response.headers["Replay-Nonce"]})
    assert retry.status_code == 200


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param(None, id="missing"),
        pytest.param(b64(b"x" * 32), id="forged"),
        pytest.param("", id="empty"),
        pytest.param("not base64url!", id="bad-alphabet"),
        pytest.param(12345, id="number"),
    ],
)
def test_unacceptable_nonce_is_bad_nonce(client, nonce):
    """§6.5.2: "If the value of the "nonce" header parameter is not a valid nonce, then the
    server MUST reject the request with an error of type badNonce"; §6.5: the same when the
    nonce is not present."""
    response = client.post(client.kid, extra={"nonce": nonce})
    problem(response, "badNonce", 400)


def test_nonce_used_by_a_failed_request_is_spent(client):
    """§6.5: a nonce is single-use: one consumed by a request that failed for another reason
    cannot be replayed."""
    nonce = client.nonce()
    bad = client.post(client.directory["newOrder"], {"identifiers": []}, extra={"nonce": nonce})
    assert bad.status_code >= 400
    replay = client.post(client.kid, extra={"nonce": nonce})
    problem(replay, "badNonce", 400)


def test_new_account_nonce_check_precedes_account_creation(target):
    """§6.5: a newAccount request with a bad nonce is rejected with badNonce, no account made."""
    client = raw_client(target)
    response = client.post(
        client.directory["newAccount"],
        {"termsOfServiceAgreed": True},
        use_jwk=True,
        extra={"nonce": b64(b"y" * 32)},
    )
    problem(response, "badNonce", 400)
    lookup = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    problem(lookup, "accountDoesNotExist", 400)
