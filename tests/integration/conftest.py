"""Fixtures for protocol tests: registered raw clients and orders driven to each state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cptest.csr import csr_der
from cptest.jwsclient import RawClient, b64


@pytest.fixture
def register(server, platform) -> Callable[..., RawClient]:
    """A new account at a tenant; EAB keys are minted on the running server as needed."""

    def _register(slug: str = "open", **kwargs) -> RawClient:
        client = RawClient(platform.directory(slug), **kwargs)
        eab = None
        if slug != "open":
            eab = server.call(lambda: server.provisioner().create_eab(slug, "fixture"))
        response = client.new_account(eab=eab)
        assert response.status_code == 201, response.text
        return client

    return _register


class Flow:
    """Drive one account's order through validation with the module's http-01 responder."""

    def __init__(self, client: RawClient, server, http01) -> None:
        self.client, self.server, self.http01 = client, server, http01

    def order(self, *names: str) -> dict:
        response = self.client.new_order(*names)
        assert response.status_code == 201, response.text
        return {"url": response.headers["Location"], **response.json()}

    def validate(self, order: dict) -> None:
        for authz_url in order["authorizations"]:
            authz = self.client.post(authz_url).json()
            chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
            self.http01.tokens[chall["token"]] = self.client.key_authorization(chall["token"])
            assert self.client.post(chall["url"], {}).status_code == 200
        self.server.drain()

    def ready_order(self, *names: str) -> dict:
        order = self.order(*names)
        self.validate(order)
        refreshed = self.client.post(order["url"]).json()
        assert refreshed["status"] == "ready", refreshed
        return {"url": order["url"], **refreshed}

    def finalize(self, order: dict, der: bytes | None = None):
        der = der or csr_der([i["value"] for i in order["identifiers"]])
        return self.client.post(order["finalize"], {"csr": b64(der)})

    def issued(self, *names: str) -> tuple[dict, str]:
        order = self.ready_order(*names)
        response = self.finalize(order)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "valid", body
        pem = self.client.post(body["certificate"]).text
        return {"url": order["url"], **body}, pem


@pytest.fixture
def flow(register, server, http01) -> Callable[..., Flow]:
    def _flow(slug: str = "open", client: RawClient | None = None) -> Flow:
        return Flow(client or register(slug), server, http01)

    return _flow
