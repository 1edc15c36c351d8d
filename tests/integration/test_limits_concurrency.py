"""concurrent-issuance-per-tenant: concurrent finalizes never take a tenant past its cap of
orders in issuance, on SQLite and PostgreSQL; a refused order stays ready and is accepted once
a slot frees up. The server holds each accepted order ``processing`` for a while (the
``finalize_processing_seconds`` knob), so the cap is full while the burst runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from cptest.csr import csr_der
from cptest.flows import answered_order
from cptest.jwsclient import ERR, RawClient, b64
from cptest.server import LIMITS_OFF, ServerThread, make_config, provision, with_testing

from certplane.server.app import SERVICES
from certplane.server.config import AcmeConfig
from certplane.server.ra.limits import rate_limits, usage
from certplane.server.storage.scope import TenantScope

CAP = 3
# How long an accepted order stays processing: far longer than the burst of finalizes takes.
HOLD_SECONDS = 3.0


@pytest.fixture(scope="module")
def busy(backend, tmp_path_factory, http01, http01_port) -> Iterator[tuple]:
    from cptest.databases import database_url

    directory = tmp_path_factory.mktemp(f"busy-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(
            directory,
            url,
            http01_port=http01_port,
            limits=dataclasses.replace(LIMITS_OFF, concurrent_issuance_per_tenant=str(CAP)),
            acme=AcmeConfig(caa_identities=("certplane.test",), finalize_deadline_seconds=0.2),
        )
        config = with_testing(config, finalize_processing_seconds=HOLD_SECONDS)
        platform = provision(config, {"open": False})
        server = ServerThread(platform.config).start()
        try:
            yield platform, server
        finally:
            server.stop()
        assert not server.sql_guard.violations, server.sql_guard.violations


def _finalize_all(client: RawClient, orders: list[dict]) -> list:
    def finalize(order: dict):
        names = [i["value"] for i in order["identifiers"]]
        signer = RawClient(client.directory_url, key=client.key, kid=client.kid)
        return signer.post(order["finalize"], {"csr": b64(csr_der(names))})

    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        return list(pool.map(finalize, orders))


def _free_slots(platform, server) -> int:
    async def read() -> int:
        services = server.app[SERVICES]
        async with services.uow.platform(write=False) as registry:
            tenant = await registry.tenant_by_slug("open")
        limits = rate_limits(platform.config.limits).for_tenant(tenant)
        async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            found = await usage(tx, limits, services.clock.now())
        return next(u.remaining for u in found if u.name == "concurrent-issuance-per-tenant")

    return int(server.call(read))


def test_concurrent_finalizes_never_exceed_the_cap(busy, http01):
    platform, server = busy
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    orders = [answered_order(client, http01, f"c{i}.busy.localhost") for i in range(10)]
    server.drain()

    answers = _finalize_all(client, orders)
    accepted = [o for o, a in zip(orders, answers, strict=True) if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(accepted) == CAP and len(refused) == 10 - CAP, [a.text for a in answers]
    assert all(a.json()["status"] == "processing" for a in answers if a.status_code == 200)
    for answer in refused:
        body = answer.json()
        assert answer.status_code == 429 and body["type"] == ERR + "rateLimited"
        assert "limit concurrent-issuance-per-tenant (3) reached" in body["detail"]
        assert answer.headers["Retry-After"] == "3"
    states = [client.post(o["url"]).json()["status"] for o in orders]
    assert sorted(states) == ["processing"] * CAP + ["ready"] * (10 - CAP)
    assert _free_slots(platform, server) == 0

    server.drain()  # the accepted orders are issued: their slots free up
    waiting = [o for o in orders if o not in accepted]
    assert [client.post(o["url"]).json()["status"] for o in accepted] == ["valid"] * CAP
    assert _free_slots(platform, server) == CAP
    again = _finalize_all(client, waiting[:CAP])
    assert [a.status_code for a in again] == [200] * CAP

    server.call(
        lambda: server.provisioner().set_tenant_limits(
            "open", {"concurrent-issuance-per-tenant": ""}
        )
    )
    try:  # without the cap, every finalize is accepted however many are in issuance
        rest = _finalize_all(client, waiting[CAP:])
        assert [a.status_code for a in rest] == [200] * len(rest), [a.text for a in rest]
    finally:
        server.call(
            lambda: server.provisioner().set_tenant_limits(
                "open", {"concurrent-issuance-per-tenant": None}
            )
        )
    server.drain()
    assert {client.post(o["url"]).json()["status"] for o in orders} == {"valid"}
