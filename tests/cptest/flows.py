"""Order steps several integration suites share, on a hand-built client."""

from __future__ import annotations

from typing import Any

from cptest.jwsclient import RawClient
from cptest.responders import Http01Responder


def answered_order(client: RawClient, http01: Http01Responder, name: str) -> dict[str, Any]:
    """newOrder for ``name`` with its http-01 challenge answered (the validation runs in the
    server's background; drain it before finalizing). The order, with its ``url``."""
    response = client.new_order(name)
    assert response.status_code == 201, response.text
    order = {**response.json(), "url": response.headers["Location"]}
    authz = client.post(order["authorizations"][0]).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
    client.post(chall["url"], {})
    return order
