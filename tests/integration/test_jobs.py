"""The one issuance path under failure (ARCHITECTURE.md §0.6): no order is left in processing,
no serial is used twice, every outcome is an event."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cptest.csr import csr_der
from cptest.databases import database_url
from cptest.jwsclient import RawClient, b64, problem
from cptest.server import ServerThread, make_config, provision
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.server.app import SERVICES
from certplane.server.clock import FakeClock
from certplane.server.storage.scope import TenantScope
from certplane.server.wfe.jose import jwk_to_public_key


@pytest.fixture
def clocked(backend, tmp_path, http01, http01_port):
    """A fresh platform whose server runs on a fake clock; yields (server, platform, clock)."""
    with database_url(backend, tmp_path) as url:
        platform = provision(make_config(tmp_path, url, http01_port=http01_port), {"open": False})
        clock = FakeClock()
        server = ServerThread(platform.config, clock=clock).start()
        try:
            yield server, platform, clock
        finally:
            server.stop()


def _ready(server, platform, http01, name):
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    order = client.new_order(name)
    body = order.json()
    authz = client.post(body["authorizations"][0]).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
    client.post(chall["url"], {})
    server.drain()
    return client, order.headers["Location"], body


def _events(server, order_id):
    services = server.app[SERVICES]

    async def load():
        async with services.uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug("open")
        async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            return await tx.events.list()

    return [
        e
        for e in server.call(load)
        if e["object_id"] == order_id or e["data"].get("order_id") == order_id
    ]


async def _certificate_statuses(server, order_id):
    services = server.app[SERVICES]
    async with services.uow.platform(write=False) as p:
        tenant = await p.tenant_by_slug("open")
    async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
        return [cert.status.value for cert in await tx.certificates.for_order(order_id)]


def test_crashed_finalize_is_finished_by_the_worker(clocked, http01):
    server, platform, clock = clocked
    client, order_url, _ = _ready(server, platform, http01, "crash.alpha.localhost")
    order_id = order_url.rsplit("/", 1)[1]
    services = server.app[SERVICES]
    account_id = client.kid.rsplit("/", 1)[1]
    der = csr_der(["crash.alpha.localhost"])

    async def accept_without_running():
        async with services.uow.platform(write=False) as p:
            tenant = await p.tenant_by_slug("open")
        scope = TenantScope(tenant.id, tenant.slug)
        async with services.uow.begin(scope) as tx:
            account = await tx.accounts.get(account_id)
            await services.issuance.accept(
                tx, tenant, account, jwk_to_public_key(account.jwk), order_id, der
            )
            # The request's part of finalize commits; the process "dies" before the job runs.
            tx.committed_actions.clear()

    server.call(accept_without_running)
    assert client.post(order_url).json()["status"] == "processing"
    assert server.run_worker_once() == 0, "the job is still leased to the dead request"
    clock.advance(timedelta(minutes=5))
    assert server.run_worker_once() == 1
    final = client.post(order_url).json()
    assert final["status"] == "valid"
    assert client.post(final["certificate"]).status_code == 200
    types = [e["type"] for e in _events(server, order_id)]
    assert "certificate.requested" in types
    assert "certificate.issued" in types
    statuses = server.call(lambda: _certificate_statuses(server, order_id))
    assert sorted(statuses) == ["abandoned", "issued"], "the dead attempt's serial is abandoned"


def test_ca_refusal_makes_the_order_invalid_with_an_error(backend, tmp_path, http01, http01_port):
    with database_url(backend, tmp_path) as url:
        config = make_config(tmp_path, url, http01_port=http01_port)
        config = dataclasses.replace(
            config, ca=dataclasses.replace(config.ca, leaf_validity_days=9000)
        )
        platform = provision(config, {"open": False})
        server = ServerThread(platform.config).start()
        try:
            client, order_url, body = _ready(server, platform, http01, "refused.alpha.localhost")
            response = client.post(
                body["finalize"], {"csr": b64(csr_der(["refused.alpha.localhost"]))}
            )
            assert response.status_code == 200
            final = response.json()
            assert final["status"] == "invalid"
            assert final["error"]["type"].endswith("serverInternal")
            assert "issuance failed" in final["error"]["detail"]
            assert "certificate" not in final
            again = client.post(
                body["finalize"], {"csr": b64(csr_der(["refused.alpha.localhost"]))}
            )
            assert problem(again)["type"].endswith("orderNotReady")
            order_id = order_url.rsplit("/", 1)[1]
            assert "certificate.failed" in [e["type"] for e in _events(server, order_id)]
        finally:
            server.stop()


def test_slow_issuance_answers_processing_then_valid(backend, tmp_path, http01, http01_port):
    with database_url(backend, tmp_path) as url:
        config = make_config(tmp_path, url, http01_port=http01_port)
        config = dataclasses.replace(
            config,
            acme=dataclasses.replace(config.acme, finalize_deadline_seconds=0.05),
            testing=dataclasses.replace(config.testing, finalize_processing_seconds=0.3),
        )
        platform = provision(config, {"open": False})
        server = ServerThread(platform.config).start()
        try:
            client, order_url, body = _ready(server, platform, http01, "slow.alpha.localhost")
            key = ec.generate_private_key(ec.SECP256R1())
            response = client.post(
                body["finalize"], {"csr": b64(csr_der(["slow.alpha.localhost"], key))}
            )
            assert response.json()["status"] == "processing"
            assert int(response.headers["Retry-After"]) > 0
            server.drain()
            assert client.post(order_url).json()["status"] == "valid"
        finally:
            server.stop()
