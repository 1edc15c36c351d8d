"""Tenant isolation (ARCHITECTURE.md §4): a foreign resource answers exactly like a missing one.

The matrix: every resource URL of tenant ``alpha``, requested by an account of tenant ``beta``
(through beta's URLs and through alpha's), compared byte for byte with the answer for an id that
does not exist at all.
"""

from __future__ import annotations

import pytest
from cptest.jwsclient import RawClient, b64, problem

from certplane.server.ra.provisioning import NewEab


@pytest.fixture
def alpha_world(flow):
    """An alpha account with an order, authorization, challenge and certificate."""
    f = flow("alpha")
    order, pem = f.issued("iso.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    return {
        "client": f.client,
        "acct": f.client.kid,
        "orders": f.client.kid + "/orders",
        "order": order["url"],
        "finalize": order["finalize"],
        "authz": order["authorizations"][0],
        "chall": authz["challenges"][0]["url"],
        "cert": order["certificate"],
        "pem": pem,
    }


def _comparable(response) -> tuple[int, dict]:
    doc = problem(response)
    return response.status_code, doc


def _missing(url: str) -> str:
    """The same URL with its id replaced by one that exists nowhere."""
    head, _, tail = url.partition("/acme/")
    slug, kind, rest = tail.split("/", 2)
    resource_id, sep, suffix = rest.partition("/")
    return f"{head}/acme/{slug}/{kind}/{'A' * len(resource_id)}{sep}{suffix}"


def _payload(kind: str) -> dict | None:
    return {"finalize": {"csr": b64(b"x")}, "chall": {}}.get(kind)


RESOURCES = ("acct", "orders", "order", "finalize", "authz", "chall", "cert")


@pytest.mark.parametrize("kind", RESOURCES)
def test_beta_account_on_alpha_urls_is_like_a_missing_resource(alpha_world, register, kind):
    beta = register("beta")
    url = alpha_world[kind]
    foreign = beta.post(url, _payload(kind))
    missing = beta.post(_missing(url), _payload(kind))
    assert _comparable(foreign) == _comparable(missing)
    assert foreign.status_code in (400, 404)


@pytest.mark.parametrize("kind", RESOURCES)
def test_alpha_ids_under_beta_urls_are_missing(alpha_world, register, kind):
    beta = register("beta")
    url = alpha_world[kind].replace("/acme/alpha/", "/acme/beta/")
    if kind in ("acct", "orders"):
        url = url.replace(alpha_world["acct"].rsplit("/", 1)[1], beta.kid.rsplit("/", 1)[1] + "x")
    foreign = beta.post(url, _payload(kind))
    missing = beta.post(_missing(url), _payload(kind))
    assert _comparable(foreign) == _comparable(missing)
    assert foreign.status_code == 404


def test_same_key_at_two_tenants_is_two_accounts(server, platform):
    alpha = RawClient(platform.directory("alpha"))
    eab_a = server.call(lambda: server.provisioner().create_eab("alpha", "x"))
    eab_b = server.call(lambda: server.provisioner().create_eab("beta", "x"))
    assert alpha.new_account(eab=eab_a).status_code == 201
    beta = RawClient(platform.directory("beta"), key=alpha.key)
    assert beta.new_account(eab=eab_b).status_code == 201
    assert alpha.kid.rsplit("/", 1)[1] != beta.kid.rsplit("/", 1)[1]
    beta.kid = alpha.kid
    response = beta.post(beta.directory["newOrder"], {"identifiers": []})
    assert problem(response)["type"].endswith("accountDoesNotExist")


def test_alpha_eab_key_at_beta_is_like_an_unknown_key(server, platform):
    eab = server.call(lambda: server.provisioner().create_eab("alpha", "x"))
    foreign = RawClient(platform.directory("beta")).new_account(eab=eab)
    unknown = RawClient(platform.directory("beta")).new_account(eab=NewEab("A" * 22, eab.hmac_key))
    assert _comparable(foreign) == _comparable(unknown)
    assert RawClient(platform.directory("alpha")).new_account(eab=eab).status_code == 201


def test_alpha_certificate_cannot_be_revoked_through_beta(alpha_world, register):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    beta = register("beta")
    der = x509.load_pem_x509_certificates(alpha_world["pem"].encode())[0].public_bytes(
        serialization.Encoding.DER
    )
    response = beta.post(beta.directory["revokeCert"], {"certificate": b64(der)})
    assert response.status_code == 404
