"""RFC 8737: the tls-alpn-01 challenge, validated against the lab's TLS responder."""

from __future__ import annotations

import re

import pytest
from cptest.conf_acme import account, issue, need_lab, new_order, unique
from cptest.conf_acmelib import sans
from cryptography import x509

TLS_ALPN = "tls-alpn-01"
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture(scope="module")
def client(target):
    need_lab(target)
    return account(target)


def tls_alpn_challenge(client, order):
    authz = client.post(order["authorizations"][0]).json()
    return next(c for c in authz["challenges"] if c["type"] == TLS_ALPN)


def test_offered_for_dns_identifiers(client):
    """§3: a "tls-alpn-01" challenge object has "type", "url", "status" and a "token" that
    "MUST have at least 128 bits of entropy" and "MUST NOT contain any characters outside the
    base64url alphabet"."""
    chall = tls_alpn_challenge(client, new_order(client, unique("alpn")))
    assert chall["status"] == "pending"
    assert chall["url"].startswith("http")
    assert BASE64URL.match(chall["token"]), chall["token"]
    assert len(chall["token"]) >= 22  # 128 bits in base64url


def test_not_offered_for_a_wildcard(client):
    """§3: the server connects with SNI set to the name being validated, which a wildcard
    cannot be; only dns-01 can prove a wildcard (RFC 8555 §7.1.3)."""
    order = new_order(client, "*." + unique("wild"))
    authz = client.post(order["authorizations"][0]).json()
    assert TLS_ALPN not in {c["type"] for c in authz["challenges"]}


def test_certificate_issued_with_tls_alpn(target, client):
    """§3: a certificate with the "acmeIdentifier" extension holding SHA-256 of the key
    authorization, served with ALPN "acme-tls/1" for the name, proves control and the order
    completes. (certbot 5's ``acme`` library no longer implements tls-alpn-01, so this happy
    path is hand-built.)"""
    name = unique("alpn")
    _, pem = issue(target, client, name, ctype=TLS_ALPN)
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    assert sans(leaf) == ([name], [])


def answer(client, chall):
    client.post(chall["url"], {})
    return client.poll(chall["url"], ("valid", "invalid"))


def test_wrong_digest_is_invalid(target, client):
    """§3: the server verifies "that the acmeIdentifier extension value contains the
    SHA-256 digest of the key authorization"; another digest fails the challenge."""
    name = unique("alpn")
    chall = tls_alpn_challenge(client, new_order(client, name))
    target.lab.add_tlsalpn01(name, client.key_authorization(chall["token"]) + "x")
    body = answer(client, chall)
    assert body["status"] == "invalid"
    assert body["error"]["type"].rsplit(":", 1)[1] in ("unauthorized", "incorrectResponse", "tls")


def test_another_accounts_key_authorization_is_invalid(target, client):
    """§3 with RFC 8555 §8.1: the key authorization binds the token to the account key; one
    computed with another account's key does not validate."""
    other = account(target)
    name = unique("alpn")
    chall = tls_alpn_challenge(client, new_order(client, name))
    target.lab.add_tlsalpn01(name, other.key_authorization(chall["token"]))
    assert answer(client, chall)["status"] == "invalid"


def test_no_validation_certificate_is_invalid(client):
    """§3: with no acme-tls/1 certificate for the name (the responder has none), the
    challenge fails with an error."""
    chall = tls_alpn_challenge(client, new_order(client, unique("alpn")))
    body = answer(client, chall)
    assert body["status"] == "invalid"
    assert body["error"]["type"].startswith("urn:ietf:params:acme:error:")


def test_validated_authorization_names_the_challenge(target, client):
    """RFC 8555 §7.1.4: after validation the authorization is "valid" and its tls-alpn-01
    challenge is "valid" with a "validated" time."""
    name = unique("alpn")
    order = new_order(client, name)
    chall = tls_alpn_challenge(client, order)
    target.lab.add_tlsalpn01(name, client.key_authorization(chall["token"]))
    assert answer(client, chall)["status"] == "valid"
    authz = client.poll(order["authorizations"][0], ("valid", "invalid"))
    assert authz["status"] == "valid"
    done = next(c for c in authz["challenges"] if c["type"] == TLS_ALPN)
    assert done["status"] == "valid" and "validated" in done
