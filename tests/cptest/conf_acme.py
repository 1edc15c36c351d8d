"""Clients and the baseline every response of the conformance suite is held to.

``baseline`` is installed as a ``requests`` response hook on every session that talks to the
target, so no test can forget it: a 5xx, an error that is not a registered ACME problem document,
a POST answer without ``Replay-Nonce`` or a resource without ``Link: rel="index"`` fails the test
at the request that produced it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import pytest
import requests

from cptest.conf_target import Target
from cptest.jwsclient import ERR, PROBLEM, RawClient, b64

# RFC 8555 §6.7 (and RFC 9773 §7.4 for alreadyReplaced).
REGISTERED = frozenset(
    {
        "accountDoesNotExist",
        "alreadyRevoked",
        "badCSR",
        "badNonce",
        "badPublicKey",
        "badRevocationReason",
        "badSignatureAlgorithm",
        "caa",
        "compound",
        "connection",
        "dns",
        "externalAccountRequired",
        "incorrectResponse",
        "invalidContact",
        "malformed",
        "orderNotReady",
        "rateLimited",
        "rejectedIdentifier",
        "serverInternal",
        "tls",
        "unauthorized",
        "unsupportedContact",
        "unsupportedIdentifier",
        "userActionRequired",
        "alreadyReplaced",
    }
)
POLL_SECONDS = 30.0


def baseline_hook(directory: str):
    """A response hook checking the baseline of RFC 8555 §6.5, §6.7, §7.1 on every response."""

    def check(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = response.request.method
        where = f"{method} {response.url} -> {response.status_code}"
        # §6.7: errors are problem documents; a 5xx is a server failure, never acceptable here.
        assert response.status_code < 500, f"{where}: server error\n{response.text[:2000]}"
        if method == "POST":
            # §6.5: "The server MUST include a Replay-Nonce header field in every successful
            # response to a POST request and SHOULD provide it in error responses as well."
            assert response.headers.get("Replay-Nonce"), f"{where}: no Replay-Nonce"
        if response.url != directory:
            # §7.1: the "index" link relation is present on all resources other than the
            # directory and indicates the URL of the directory.
            index = response.links.get("index", {}).get("url")
            assert index == directory, f"{where}: Link rel=index is {index!r}"
        if response.status_code >= 400:
            check_problem(response)

    return check


def check_problem(response: requests.Response) -> dict[str, Any]:
    """RFC 8555 §6.7 / RFC 7807: problem+json, a registered ACME type, status equal to HTTP."""
    where = f"{response.request.method} {response.url} -> {response.status_code}"
    ctype = response.headers.get("Content-Type", "")
    assert ctype.startswith(PROBLEM), f"{where}: Content-Type {ctype!r}\n{response.text[:500]}"
    doc: dict[str, Any] = response.json()
    assert doc.get("type", "").startswith(ERR), f"{where}: type {doc.get('type')!r}"
    assert doc["type"].removeprefix(ERR) in REGISTERED, f"{where}: unregistered {doc['type']}"
    if "status" in doc:
        assert doc["status"] == response.status_code, f"{where}: body status {doc['status']}"
    return doc


def problem(response: requests.Response, kind: str | None = None, status: int | None = None):
    """The problem document of an error response; optionally its exact type and status."""
    assert response.status_code >= 400, f"expected an error, got {response.status_code}"
    doc = check_problem(response)
    if kind is not None:
        assert doc["type"] == ERR + kind, (kind, doc)
    if status is not None:
        assert response.status_code == status, (status, doc)
    return doc


class Client(RawClient):
    """A hand-built JWS client bound to a target, with the baseline hook on its session."""

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, timeout=30, **kwargs)

    def poll(self, url: str, done: tuple[str, ...], seconds: float = POLL_SECONDS) -> dict:
        """POST-as-GET ``url`` until its status is one of ``done`` (bounded)."""
        deadline = time.monotonic() + seconds
        while True:
            body = self.post(url).json()
            if body.get("status") in done or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


def raw_client(target: Target, directory: str | None = None, key: Any = None) -> Client:
    directory = directory or target.directory
    session = target.session()
    session.hooks["response"].append(baseline_hook(directory))
    kwargs = {"key": key} if key is not None else {}
    return Client(directory, session=session, **kwargs)


def needs_eab(client: RawClient) -> bool:
    return bool(client.directory.get("meta", {}).get("externalAccountRequired"))


def account(target: Target, directory: str | None = None, key: Any = None, **fields) -> Client:
    """A client with a fresh account (with EAB where the directory requires it)."""
    client = raw_client(target, directory, key)
    eab = None
    if needs_eab(client):
        eab = target.new_eab()
        if eab is None:
            pytest.skip("the directory requires EAB and the target gave no (more) EAB keys")
    response = client.new_account(eab=eab, **fields)
    assert response.status_code == 201, response.text
    return client


def dns01_value(key_authorization: str) -> str:
    return b64(hashlib.sha256(key_authorization.encode()).digest())


def need_lab(target: Target) -> None:
    if target.lab is None or target.http01 is None:
        pytest.skip("the target validates against a network this suite does not control")


def publish(target: Target, identifier: str, token: str, key_auth: str, ctype: str) -> None:
    """Make the lab answer ``ctype`` for ``identifier`` with ``key_auth`` (RFC 8555 §8.3/§8.4,
    RFC 8737 §3)."""
    need_lab(target)
    assert target.lab is not None and target.http01 is not None
    if ctype == "dns-01":
        target.lab.set_txt(f"_acme-challenge.{identifier}", dns01_value(key_auth))
    elif ctype == "tls-alpn-01":
        target.lab.add_tlsalpn01(identifier, key_auth)
    else:
        target.http01.tokens[token] = key_auth


def authorize(target: Target, client: Client, order: dict, ctype: str = "http-01") -> dict:
    """Answer every pending authorization of ``order`` with ``ctype``; the order, polled."""
    need_lab(target)
    challenges = []
    for url in order["authorizations"]:
        authz = client.post(url).json()
        if authz["status"] == "valid":
            continue
        chall = next(c for c in authz["challenges"] if c["type"] == ctype)
        key_auth = client.key_authorization(chall["token"])
        publish(target, authz["identifier"]["value"], chall["token"], key_auth, ctype)
        assert client.post(chall["url"], {}).status_code == 200
        challenges.append(chall)
    for chall in challenges:
        client.poll(chall["url"], ("valid", "invalid"))
    return {**client.poll(order["url"], ("ready", "invalid", "valid")), "url": order["url"]}


def unique(label: str = "host") -> str:
    """A fresh DNS name under example.com (every name resolves to 127.0.0.1 in the lab)."""
    return f"{label}-{secrets.token_hex(4)}.conf.example.com"


def new_order(client: Client, *names: str) -> dict:
    response = client.new_order(*names)
    assert response.status_code == 201, response.text
    return {**response.json(), "url": response.headers["Location"]}


def ready_order(target: Target, client: Client, *names: str, ctype: str = "http-01") -> dict:
    order = authorize(target, client, new_order(client, *names), ctype)
    assert order["status"] == "ready", order
    return order


def issue(target: Target, client: Client, *names: str, ctype: str = "http-01") -> tuple[dict, str]:
    """A valid order for ``names`` (authorized with ``ctype``) and its certificate chain (PEM)."""
    from cptest.csr import csr_der

    order = ready_order(target, client, *names, ctype=ctype)
    url = order["url"]
    response = client.post(order["finalize"], {"csr": b64(csr_der(list(names)))})
    assert response.status_code == 200, response.text
    order = {**client.poll(url, ("valid", "invalid")), "url": url}
    assert order["status"] == "valid", order
    cert = client.post(order["certificate"])
    assert cert.status_code == 200, cert.text
    return order, cert.text
