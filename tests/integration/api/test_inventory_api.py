"""Inventory through the management API: accounts (list, deactivate), orders, certificates
(search by name, status, issuer, expiry window; revoke), and the event log's filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cptest.apiclient import ApiClient, problem_type
from cptest.csr import csr_der
from cptest.databases import database_url
from cptest.flows import answered_order
from cptest.jwsclient import ERR, RawClient, b64
from cptest.server import ServerThread, make_config, provision

from certplane.server.ra.provisioning import NewEab


@pytest.fixture(scope="module")
def shop(backend, tmp_path_factory, http01_port, http01) -> Iterator[dict]:
    directory = tmp_path_factory.mktemp(f"inventory-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port)
        provision(config, {"inv": True})
        server = ServerThread(config).start()
        try:
            admin = ApiClient(server.api_url, server.token("ida", "tenant-admin", tenant="inv"))
            client = RawClient(f"{config.server.base_url}/acme/inv/directory")
            made = admin.post("/tenants/inv/eab-keys", {}).json()
            assert client.new_account(eab=NewEab(made["kid"], made["hmac_key"])).status_code == 201
            issued = {}
            for name in ("www.inv.localhost", "api.inv.localhost", "other.localhost"):
                order = answered_order(client, http01, name)
                server.drain()
                done = client.post(order["finalize"], {"csr": b64(csr_der([name]))}).json()
                assert done["status"] == "valid", done
                issued[name] = done
            yield {"server": server, "admin": admin, "client": client, "issued": issued}
        finally:
            server.stop()


def _search(admin: ApiClient, **params: str) -> list[dict]:
    response = admin.get("/tenants/inv/certificates", params={"limit": "200", **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _names(items: list[dict]) -> set[str]:
    return {i["identifiers"][0]["value"] for i in items}


def test_certificates_by_name_status_issuer_and_expiry(shop):
    admin = shop["admin"]
    assert _names(_search(admin, name="www.inv.localhost")) == {"www.inv.localhost"}
    assert _names(_search(admin, name=".inv.localhost")) == {
        "www.inv.localhost",
        "api.inv.localhost",
    }
    assert _search(admin, name="ww.inv.localhost") == []  # exact names match exactly
    issued = _search(admin, status="issued")
    assert _names(issued) == {"www.inv.localhost", "api.inv.localhost", "other.localhost"}
    issuer = issued[0]["issuer_id"]
    assert len(_search(admin, issuer=issuer)) == 3 and _search(admin, issuer="nope") == []
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=120)).isoformat()
    assert _search(admin, expires_before=soon) == []  # 90-day certificates
    assert len(_search(admin, expires_after=soon, expires_before=later)) == 3
    one = admin.get(f"/tenants/inv/certificates/{issued[0]['id']}").json()
    assert one["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_revoke_through_the_api(shop):
    admin = shop["admin"]
    (cert,) = _search(admin, name="api.inv.localhost")
    auditor = ApiClient(
        shop["server"].api_url, shop["server"].token("aud", "auditor", tenant="inv")
    )
    assert (
        auditor.post(f"/tenants/inv/certificates/{cert['id']}/revoke", {"reason": 1}).status_code
        == 403
    )
    bad = admin.post(f"/tenants/inv/certificates/{cert['id']}/revoke", {"reason": 6})
    assert bad.status_code == 400  # certificateHold is not a reason certplane gives
    revoked = admin.post(f"/tenants/inv/certificates/{cert['id']}/revoke", {"reason": 1})
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked" and revoked.json()["revocation_reason"] == 1
    again = admin.post(f"/tenants/inv/certificates/{cert['id']}/revoke", {"reason": 1})
    assert again.status_code == 409
    assert _names(_search(admin, status="revoked")) == {"api.inv.localhost"}
    events = admin.get(
        "/tenants/inv/events",
        params={"type": "certificate.revoked", "object_id": cert["id"]},
    ).json()["items"]
    assert [(e["actor"], e["data"]["reason"]) for e in events] == [("api:ida", 1)]


def test_orders_and_events_filters(shop):
    admin = shop["admin"]
    orders = admin.get("/tenants/inv/orders", params={"status": "valid"}).json()["items"]
    assert len(orders) == 3
    (order_id,) = [o["id"] for o in orders if o["identifiers"][0]["value"] == "www.inv.localhost"]
    assert admin.get(f"/tenants/inv/orders/{order_id}").json()["status"] == "valid"
    assert admin.get("/tenants/inv/orders/nope").status_code == 404
    by_object = admin.get(
        "/tenants/inv/events", params={"object_type": "order", "object_id": order_id}
    ).json()["items"]
    assert {"order.created", "certificate.requested"} <= {e["type"] for e in by_object}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert admin.get("/tenants/inv/events", params={"since": future}).json()["items"] == []
    past = admin.get("/tenants/inv/events", params={"until": future, "limit": "1"}).json()
    assert len(past["items"]) == 1 and past["next_cursor"]


def test_deactivating_an_account_stops_it(shop):
    admin, client = shop["admin"], shop["client"]
    (account,) = admin.get("/tenants/inv/accounts").json()["items"]
    assert account["status"] == "valid"
    done = admin.post(f"/tenants/inv/accounts/{account['id']}/deactivate")
    assert done.status_code == 200 and done.json()["status"] == "deactivated"
    refused = client.new_order("late.inv.localhost")
    assert refused.status_code in (401, 403)
    assert refused.json()["type"] == ERR + "unauthorized"
    again = admin.post(f"/tenants/inv/accounts/{account['id']}/deactivate")
    assert again.status_code == 409 and problem_type(again) == "conflict"
