"""Host inventory: agents report what they found on a host (``POST /acme/{tenant}/inventory``,
an account POST like any other) and the management API lists it with its flags.

Snapshots replace each other per account and host; a refused POST stores nothing; a served
location of a certificate the tenant issued links it and appends ``certificate.deployed`` once;
the agent's events land on the certificate; another tenant sees nothing of it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cptest.apiclient import ApiClient, problem_type
from cptest.databases import database_url
from cptest.jwsclient import ERR, RawClient, b64, problem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certplane.agent.report import certificate_item
from certplane.server.storage import tables as t
from certplane.server.storage.db import Database
from certplane.server.storage.migrate import upgrade

NOW = datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _fake(seed: str, **fields: Any) -> dict[str, Any]:
    """An item for a certificate that exists only in the report (no tenant issued it)."""
    item: dict[str, Any] = {
        "fingerprint": hashlib.sha256(seed.encode()).hexdigest(),
        "subject": f"CN={seed}",
        "sans": [seed],
        "issuer": "CN=Somebody Else CA",
        "not_before": _iso(NOW - timedelta(days=10)),
        "not_after": _iso(NOW + timedelta(days=200)),
        "key_type": "ec-p256",
        "managed": False,
        "locations": [{"kind": "file", "path": f"/etc/ssl/{seed}.pem"}],
    }
    item.update(fields)
    return item


def _issued_item(pem: str, **fields: Any) -> dict[str, Any]:
    item = certificate_item(pem.encode(), managed=True, locations=())
    item["locations"] = [{"kind": "file", "path": "/etc/ssl/issued.pem", "index": 0}]
    item.update(fields)
    return item


def _endpoint(port: int = 443, sni: str | None = "www.inv.localhost", **more: Any) -> dict:
    return {"kind": "endpoint", "host": "127.0.0.1", "port": port, "sni": sni, **more}


def _report(client: RawClient, host: str, items: list, events: list | None = None):
    url = client.directory["meta"]["certplaneInventory"]
    payload: dict[str, Any] = {"host": host, "items": items}
    if events is not None:
        payload["events"] = events
    return client.post(url, payload)


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _cert_id(order: dict) -> str:
    return order["certificate"].rsplit("/", 1)[1]


@pytest.fixture
def admin(server) -> ApiClient:
    return ApiClient(server.api_url, server.token("ida", "tenant-admin", tenant="alpha"))


def _inventory(admin: ApiClient, tenant: str = "alpha", **params: str) -> list[dict]:
    response = admin.get(f"/tenants/{tenant}/inventory", params={"limit": "200", **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _events(admin: ApiClient, **params: str) -> list[dict]:
    response = admin.get("/tenants/alpha/events", params={"limit": "200", **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


# --- the endpoint ---------------------------------------------------------------------------


def test_the_directory_advertises_the_inventory_url(server, platform):
    directory = RawClient(platform.directory("alpha")).directory
    base = f"{platform.config.server.base_url}/acme/alpha"
    assert directory["meta"]["certplaneInventory"] == f"{base}/inventory"
    assert directory["newOrder"] == f"{base}/new-order"  # RFC 8555 fields as they were
    assert directory["meta"]["externalAccountRequired"] is True


def test_a_report_is_stored_and_the_next_snapshot_replaces_it(register, admin):
    client = register("alpha")
    first = _ok(_report(client, "Snap.Example", [_fake("a.snap"), _fake("b.snap")]))
    assert first == {"host": "snap.example", "items": 2, "linked": 0, "events": 0, "deployed": 0}
    before = {i["sans"][0]: i for i in _inventory(admin, host="snap.example")}
    assert set(before) == {"a.snap", "b.snap"}
    account_id = client.kid.rsplit("/", 1)[1]
    assert before["a.snap"]["account_id"] == account_id
    assert before["a.snap"]["locations"] == [
        {"kind": "file", "path": "/etc/ssl/a.snap.pem", "served": False}
    ]

    _ok(_report(client, "snap.example", [_fake("b.snap"), _fake("c.snap")]))
    after = {i["sans"][0]: i for i in _inventory(admin, host="snap.example")}
    assert set(after) == {"b.snap", "c.snap"}  # a.snap is gone: a report is a snapshot
    assert after["b.snap"]["id"] == before["b.snap"]["id"]
    assert after["b.snap"]["first_seen"] == before["b.snap"]["first_seen"]
    assert after["b.snap"]["last_seen"] > before["b.snap"]["last_seen"]

    _ok(_report(client, "snap.example", []))
    assert _inventory(admin, host="snap.example") == []


def test_snapshots_are_per_host_and_per_account(register, admin):
    one, other = register("alpha"), register("alpha")
    _ok(_report(one, "h1.per", [_fake("x.per")]))
    _ok(_report(one, "h2.per", [_fake("y.per")]))
    _ok(_report(other, "h1.per", [_fake("x.per"), _fake("z.per")]))
    _ok(_report(one, "h1.per", []))
    assert {i["sans"][0] for i in _inventory(admin, name=".per")} == {"y.per", "x.per", "z.per"}
    (left,) = _inventory(admin, host="h1.per", name="x.per")
    assert left["account_id"] == other.kid.rsplit("/", 1)[1]


def test_a_report_over_the_usual_body_limit_is_taken(register, admin):
    client = register("alpha")
    items = [_fake(f"n{n}.big", subject="CN=" + "x" * 400) for n in range(400)]
    body = json.dumps(client.body(client.directory["meta"]["certplaneInventory"], {
        "host": "big.example", "items": items, "events": []
    })).encode()  # fmt: skip
    assert len(body) > 65536
    _ok(client.post_raw(client.directory["meta"]["certplaneInventory"], body))
    assert len(_inventory(admin, host="big.example")) == 200  # one full page


def _bad_signature(client: RawClient, url: str) -> dict:
    body = client.body(url, {"host": "x", "items": []})
    signature = bytearray(base64.urlsafe_b64decode(body["signature"] + "=="))
    signature[5] ^= 0x01
    body["signature"] = b64(bytes(signature))
    return body


REFUSALS = {
    "an account of another tenant": "accountDoesNotExist",
    "this tenant's account at another tenant's URL": "accountDoesNotExist",
    "an unknown kid": "accountDoesNotExist",
    "a bad signature": "malformed",
    "a jwk instead of a kid": "malformed",
    "the url of another resource": "unauthorized",
    "a replayed nonce": "badNonce",
    "a deactivated account": "unauthorized",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_like_any_account_post(register, admin, platform, case):
    alpha, beta = register("alpha"), register("beta")
    url = alpha.directory["meta"]["certplaneInventory"]
    payload = {"host": "refused.example", "items": [_fake("refused")]}
    if case == "an account of another tenant":
        beta_at_alpha = RawClient(platform.directory("alpha"), key=beta.key, kid=beta.kid)
        response = beta_at_alpha.post(url, payload)
    elif case == "this tenant's account at another tenant's URL":
        response = alpha.post(beta.directory["meta"]["certplaneInventory"], payload)
    elif case == "an unknown kid":
        response = alpha.post(url, payload, extra={"kid": alpha.kid + "x"})
    elif case == "a bad signature":
        response = alpha.post_raw(url, json.dumps(_bad_signature(alpha, url)).encode())
    elif case == "a jwk instead of a kid":
        response = alpha.post(url, payload, use_jwk=True)
    elif case == "the url of another resource":
        response = alpha.post(url, payload, extra={"url": alpha.directory["newOrder"]})
    elif case == "a replayed nonce":
        body = json.dumps(alpha.body(url, {"host": "replayed.example", "items": []})).encode()
        _ok(alpha.post_raw(url, body))
        response = alpha.post_raw(url, body)
    else:
        assert alpha.post(alpha.kid, {"status": "deactivated"}).status_code == 200
        response = alpha.post(url, payload)
    assert problem(response)["type"] == ERR + REFUSALS[case]
    assert _inventory(admin, host="refused.example") == []


MALFORMED = [
    {"items": []},
    {"host": "m.example"},
    {"host": "m.example", "items": [], "extra": True},
    {"host": "m.example", "items": "none"},
    {"host": "m.example", "items": [_fake("m", fingerprint="00")]},
    {"host": "m.example", "items": [_fake("m", not_after="tomorrow")]},
    {"host": "m.example", "items": [_fake("m", subject="\u0000")]},
    {"host": "m.example", "items": [_fake("m", locations=[{"kind": "socket"}])]},
    {"host": "m.example", "items": [_fake("m"), _fake("m")]},
    {"host": "m.example", "items": [], "events": [{"type": "exploded"}]},
    {"host": "m.example", "items": [_fake("m", sans=["x"] * 101)]},
]


def test_malformed_payloads_are_malformed_problems(register, admin):
    client = register("alpha")
    url = client.directory["meta"]["certplaneInventory"]
    for payload in MALFORMED:
        response = client.post(url, payload)
        assert response.status_code == 400, (payload, response.text)
        assert problem(response)["type"] == ERR + "malformed"
    for raw in (None, [], "x", 1):  # POST-as-GET, and payloads that are no object
        response = client.post(url, raw if raw is None else json.dumps(raw).encode())
        assert problem(response)["type"] == ERR + "malformed"
    too_big = client.post_raw(url, b"{" + b" " * (4 * 1024 * 1024 + 1) + b"}")
    assert too_big.status_code == 413 and problem(too_big)["type"] == ERR + "malformed"
    assert _inventory(admin, host="m.example") == []


# --- links and events -----------------------------------------------------------------------


def test_a_served_issued_certificate_is_linked_and_deployed_once(flow, admin):
    f = flow("alpha")
    order, pem = f.issued("www.inv.localhost")
    cert_id = _cert_id(order)
    served = _issued_item(pem, locations=[_endpoint(), _endpoint(8443, served=False)])
    outcome = _ok(_report(f.client, "web.deploy", [served]))
    assert outcome["linked"] == 1 and outcome["deployed"] == 1
    (item,) = _inventory(admin, host="web.deploy")
    assert item["certificate_id"] == cert_id and item["served"] is True
    assert "unknown-issuer" not in item["flags"]
    for _ in range(2):  # reported again: recorded once per certificate and endpoint
        assert _ok(_report(f.client, "web.deploy", [served]))["deployed"] == 0
    deployed = _events(admin, object_id=cert_id, type="certificate.deployed")
    assert len(deployed) == 1
    (event,) = deployed
    assert event["object_type"] == "certificate"
    assert event["actor"] == f"account:{f.client.kid.rsplit('/', 1)[1]}"
    assert event["data"]["where"] == "127.0.0.1:443 sni=www.inv.localhost"
    assert event["data"]["host"] == "web.deploy" and event["data"]["source"] == "inventory"

    elsewhere = _issued_item(pem, locations=[_endpoint(), _endpoint(8443)])
    assert _ok(_report(f.client, "web.deploy", [elsewhere]))["deployed"] == 1
    assert _ok(_report(f.client, "web.other", [elsewhere]))["deployed"] == 2  # another host
    assert len(_events(admin, object_id=cert_id, type="certificate.deployed")) == 4


def test_agent_events_are_recorded_on_the_certificate_or_the_account(flow, admin):
    f = flow("alpha")
    order, pem = f.issued("events.inv.localhost")
    cert_id, account_id = _cert_id(order), f.client.kid.rsplit("/", 1)[1]
    fingerprint = certificate_item(pem.encode(), managed=True, locations=())["fingerprint"]
    at = _iso(NOW)
    events = [
        {"type": "renewed", "certificate": fingerprint, "name": "web", "detail": "", "at": at},
        {"type": "deployed", "certificate": fingerprint, "name": "web", "detail": "", "at": at},
        {"type": "failed", "certificate": fingerprint, "name": "web", "detail": "reload", "at": at},
        {"type": "failed", "certificate": None, "name": "api", "detail": "no order", "at": at},
        {"type": "failed", "certificate": "cd" * 32, "name": "x", "detail": "other", "at": at},
    ]
    outcome = _ok(_report(f.client, "events.example", [], events))
    assert outcome["events"] == 5 and outcome["deployed"] == 0
    on_cert = _events(admin, object_type="certificate", object_id=cert_id)
    agent = [e for e in on_cert if e["data"].get("source") == "agent"]
    assert sorted(e["type"] for e in agent) == [
        "agent.failed", "certificate.deployed", "certificate.renewed",
    ]  # fmt: skip
    assert all(e["actor"] == f"account:{account_id}" for e in agent)
    (failed,) = [e for e in agent if e["type"] == "agent.failed"]
    assert failed["data"] == {
        "source": "agent", "host": "events.example", "name": "web", "detail": "reload",
        "fingerprint": fingerprint, "at": datetime.fromisoformat(at).isoformat(),
    }  # fmt: skip
    on_account = _events(admin, object_type="account", object_id=account_id, type="agent.failed")
    assert sorted(e["data"]["name"] for e in on_account) == ["api", "x"]


def test_a_certificate_of_another_tenant_is_an_unknown_issuer(flow, admin):
    _, beta_pem = flow("beta").issued("theirs.beta.localhost")
    alpha = flow("alpha").client
    outcome = _ok(_report(alpha, "foreign.example", [_issued_item(beta_pem)]))
    assert outcome["linked"] == 0
    (item,) = _inventory(admin, host="foreign.example")
    assert item["certificate_id"] is None and "unknown-issuer" in item["flags"]


# --- the management API ---------------------------------------------------------------------


@pytest.fixture
def flagged(flow, admin) -> dict[str, Any]:
    """A host of its own holding one certificate per flag, and one without any: the host, and
    each certificate's entry id by name."""
    host = f"flags-{secrets.token_hex(4)}.example"
    f = flow("alpha")
    _, pem = f.issued("good.flags.localhost")
    items = [
        _issued_item(pem, locations=[_endpoint(sni="good.flags.localhost")]),
        _fake("expiring.flags.test", not_after=_iso(NOW + timedelta(days=10)), managed=True),
        _fake("expired.flags.test", not_before=_iso(NOW - timedelta(days=90)),
              not_after=_iso(NOW - timedelta(days=1))),
        _fake("rsa1024.flags.test", key_type="rsa-1024"),
        _fake("ec192.flags.test", key_type="ec-p192"),
        _fake("sha1.flags.test", key_type="rsa-4096", signature_algorithm="sha1WithRSAEncryption"),
        _fake("ed.flags.test", key_type="ed25519", signature_algorithm="ed25519"),
    ]  # fmt: skip
    _ok(_report(f.client, host, items))
    return {"host": host, "ids": {i["sans"][0]: i["id"] for i in _inventory(admin, host=host)}}


FLAGGED = {
    "expiring": {"expiring.flags.test"},
    "expired": {"expired.flags.test"},
    "weak": {"rsa1024.flags.test", "ec192.flags.test", "sha1.flags.test"},
    "unknown-issuer": {
        "expiring.flags.test", "expired.flags.test", "rsa1024.flags.test", "ec192.flags.test",
        "sha1.flags.test", "ed.flags.test",
    },
    "unmanaged": {
        "expired.flags.test", "rsa1024.flags.test", "ec192.flags.test", "sha1.flags.test",
        "ed.flags.test",
    },
}  # fmt: skip


@pytest.mark.parametrize("flag", list(FLAGGED))
def test_each_flag_filters_and_is_shown(admin, flagged, flag):
    found = _inventory(admin, host=flagged["host"], flag=flag)
    assert {i["sans"][0] for i in found} == FLAGGED[flag]
    every = _inventory(admin, host=flagged["host"])
    assert {i["sans"][0] for i in every if flag in i["flags"]} == FLAGGED[flag]


def test_the_expiring_horizon_is_a_parameter(admin, flagged):
    wide = _inventory(admin, host=flagged["host"], flag="expiring", expiring_days="100")
    assert {i["sans"][0] for i in wide} == {"expiring.flags.test", "good.flags.localhost"}
    good = next(i for i in _inventory(admin, host=flagged["host"]) if i["sans"][0].startswith("g"))
    assert good["flags"] == []


def test_filters_by_name_served_and_expiry(admin, flagged):
    def names(**params: str) -> set[str]:
        return {i["sans"][0] for i in _inventory(admin, host=flagged["host"], **params)}

    assert names(name="sha1.flags.test") == {"sha1.flags.test"}
    assert names(name="SHA1.flags.test") == {"sha1.flags.test"}
    assert names(name="ha1.flags.test") == set()  # exact names match exactly
    assert names(name=".flags.test") == set(flagged["ids"]) - {"good.flags.localhost"}
    assert names(served="true") == {"good.flags.localhost"}
    assert len(names(served="false")) == 6
    assert names(expires_before=_iso(NOW + timedelta(days=30))) == {
        "expiring.flags.test", "expired.flags.test",
    }  # fmt: skip
    assert _inventory(admin, host="nowhere.example") == []


@pytest.mark.parametrize(
    "params",
    [{"flag": "mouldy"}, {"served": "maybe"}, {"expiring_days": "0"}, {"expires_before": "x"},
     {"name": ""}, {"host": "a\u0000b"}, {"cursor": "junk"}],
)  # fmt: skip
def test_bad_filters_are_invalid_requests(admin, params):
    response = admin.get("/tenants/alpha/inventory", params=params)
    assert response.status_code == 400 and problem_type(response) == "invalid-request"


def test_pages_follow_the_cursor(admin, flagged):
    seen: list[str] = []
    cursor = None
    while True:
        params = {"host": flagged["host"], "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = admin.get("/tenants/alpha/inventory", params=params).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(flagged["ids"].values()) and len(seen) == len(set(seen))


def test_another_tenants_inventory_is_invisible(server, admin, flagged):
    beta_admin = ApiClient(server.api_url, server.token("bea", "tenant-admin", tenant="beta"))
    refused = beta_admin.get("/tenants/alpha/inventory")
    assert refused.status_code == 404 and problem_type(refused) == "not-found"
    assert _inventory(beta_admin, tenant="beta", host=flagged["host"]) == []
    assert _inventory(admin, host=flagged["host"]) != []


# --- the migration --------------------------------------------------------------------------


def _self_signed_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


async def _migrate_with_old_certificate(url: str, chain_pem: str) -> str | None:
    db = Database(url)
    try:
        await upgrade(db.engine, "0007")
        rows = [
            (t.tenants, {"id": "T", "slug": "old", "display_name": "Old", "status": "active",
                         "external_account_required": False, "created_at": NOW}),
            (t.issuers, {"tenant_id": "T", "id": "I", "name": "ca", "certificate_pem": "",
                         "chain_pem": "", "key_ref": "", "status": "active", "created_at": NOW}),
            (t.accounts, {"tenant_id": "T", "id": "A", "jwk_thumbprint": "t", "jwk": {},
                          "status": "valid", "contact": [], "terms_agreed": True,
                          "created_at": NOW}),
            (t.orders, {"tenant_id": "T", "id": "O", "account_id": "A", "status": "valid",
                        "identifiers": [], "profile": "", "expires": NOW, "created_at": NOW}),
            (t.certificates, {"tenant_id": "T", "id": "C", "serial": "01", "issuer_id": "I",
                              "order_id": "O", "account_id": "A", "status": "issued",
                              "identifiers": [], "chain_pem": chain_pem, "created_at": NOW}),
        ]  # fmt: skip
        async with db.engine.begin() as conn:
            for table, values in rows:
                await conn.execute(sa.insert(table).values(**values))
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            found = await conn.execute(sa.select(t.certificates.c.fingerprint_sha256))
            return found.scalar_one()
    finally:
        await db.dispose()


def test_the_migration_computes_the_fingerprints_of_issued_certificates(backend, tmp_path):
    pem = _self_signed_pem()
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    with database_url(backend, tmp_path) as url:
        fingerprint = asyncio.run(_migrate_with_old_certificate(url, pem))
    assert fingerprint == hashlib.sha256(der).hexdigest()
