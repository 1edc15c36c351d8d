"""RFC 8555 §7.3.5: account key rollover."""

from __future__ import annotations

import json

import pytest
from cptest.conf_acme import account, problem
from cptest.jwsclient import flattened, public_jwk
from cryptography.hazmat.primitives.asymmetric import ec


def inner(client, new_key, *, account_url=None, old_key=None, url=None, extra=None):
    url = url or client.directory["keyChange"]
    payload = {"account": account_url or client.kid, "oldKey": old_key or client.jwk}
    protected = {"jwk": public_jwk(new_key), "url": url, **(extra or {})}
    return flattened(new_key, protected, json.dumps(payload).encode())


def test_key_change_succeeds(target):
    """§7.3.5: with a valid inner and outer JWS "the server updates the account key" and
    responds 200; the new key then signs requests for the same account."""
    client = account(target)
    new_key = ec.generate_private_key(ec.SECP256R1())
    response = client.post(client.directory["keyChange"], inner(client, new_key))
    assert response.status_code == 200
    old_kid = client.kid
    client.key = new_key
    assert client.post(client.kid).status_code == 200
    lookup = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert lookup.headers["Location"] == old_kid


def test_old_key_no_longer_works(target):
    """§7.3.5: after rollover the old key no longer authenticates the account."""
    client = account(target)
    old_key = client.key
    new_key = ec.generate_private_key(ec.SECP256R1())
    assert client.post(client.directory["keyChange"], inner(client, new_key)).status_code == 200
    client.key = old_key
    assert client.post(client.kid).status_code >= 400


@pytest.mark.parametrize("case", ["wrong-account", "wrong-old-key", "wrong-url", "inner-nonce"])
def test_bad_inner_jws(target, case):
    """§7.3.5: the server MUST check that the inner JWS "url" equals the outer, "account" is the
    outer "kid", "oldKey" is the current key, and the inner JWS "MUST NOT contain a nonce"."""
    client = account(target)
    new_key = ec.generate_private_key(ec.SECP256R1())
    kwargs = {
        "wrong-account": {"account_url": client.kid + "x"},
        "wrong-old-key": {"old_key": public_jwk(ec.generate_private_key(ec.SECP256R1()))},
        "wrong-url": {"url": client.directory["newOrder"]},
        "inner-nonce": {"extra": {"nonce": client.nonce()}},
    }[case]
    response = client.post(client.directory["keyChange"], inner(client, new_key, **kwargs))
    problem(response, status=400 if case != "wrong-account" else None)


def test_key_already_in_use_is_conflict(target):
    """§7.3.5: "If there is an existing account with the new key provided, then the server
    SHOULD use status code 409 (Conflict)"."""
    client = account(target)
    other = account(target)
    response = client.post(client.directory["keyChange"], inner(client, other.key))
    assert response.status_code == 409
    problem(response)
