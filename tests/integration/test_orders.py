"""Orders, authorizations and challenges (RFC 8555 §7.4, §7.5; RFC 8738; RFC 8737)."""

from __future__ import annotations

import pytest
from cptest.jwsclient import ERR, problem


def _type(response) -> str:
    return problem(response)["type"].removeprefix(ERR)


def test_new_order_shape(register, platform):
    client = register("open")
    response = client.new_order("Www.Example.COM.", "api.example.com")
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"].startswith(
        f"{platform.config.server.base_url}/acme/open/order/"
    )
    assert body["status"] == "pending"
    assert body["identifiers"] == [
        {"type": "dns", "value": "www.example.com"},
        {"type": "dns", "value": "api.example.com"},
    ]
    assert len(body["authorizations"]) == 2
    assert body["finalize"] == response.headers["Location"] + "/finalize"
    assert body["expires"].endswith("Z")


def test_authorization_offers_every_challenge_for_dns(register):
    client = register("open")
    order = client.new_order("chall.example.com").json()
    authz = client.post(order["authorizations"][0]).json()
    assert authz["identifier"] == {"type": "dns", "value": "chall.example.com"}
    assert authz["status"] == "pending"
    assert sorted(c["type"] for c in authz["challenges"]) == ["dns-01", "http-01", "tls-alpn-01"]
    tokens = {c["token"] for c in authz["challenges"]}
    assert len(tokens) == 1 and len(tokens.pop()) >= 43


def test_wildcard_gets_dns01_only_and_the_base_name(register):
    client = register("open")
    order = client.new_order("*.wild.example.com").json()
    authz = client.post(order["authorizations"][0]).json()
    assert authz["identifier"] == {"type": "dns", "value": "wild.example.com"}
    assert authz["wildcard"] is True
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


def test_ip_identifier_gets_http01_and_tls_alpn01(register):
    client = register("open")
    response = client.new_order(ip=("192.0.2.7", "2001:DB8::1"))
    assert response.status_code == 201
    body = response.json()
    assert body["identifiers"] == [
        {"type": "ip", "value": "192.0.2.7"},
        {"type": "ip", "value": "2001:db8::1"},
    ]
    authz = client.post(body["authorizations"][0]).json()
    assert sorted(c["type"] for c in authz["challenges"]) == ["http-01", "tls-alpn-01"]


def test_every_bad_identifier_gets_its_subproblem(register):
    client = register("open")
    identifiers = [
        {"type": "dns", "value": "ok.example.com"},
        {"type": "dns", "value": "bad..example.com"},
        {"type": "email", "value": "a@example.com"},
        {"type": "dns", "value": "a.*.example.com"},
        {"type": "dns", "value": "host.invalid"},
    ]
    response = client.post(client.directory["newOrder"], {"identifiers": identifiers})
    doc = problem(response)
    assert response.status_code == 400
    subs = doc["subproblems"]
    types = sorted(s["type"].removeprefix(ERR) for s in subs)
    assert types == ["malformed", "malformed", "unsupportedIdentifier"]
    assert {s["identifier"]["value"] for s in subs} == {
        "bad..example.com",
        "a@example.com",
        "a.*.example.com",
    }


def test_reserved_name_is_rejected_identifier(register):
    client = register("open")
    doc = problem(client.new_order("host.invalid"))
    assert doc["type"] == ERR + "rejectedIdentifier"
    assert doc["subproblems"][0]["identifier"] == {"type": "dns", "value": "host.invalid"}


def test_duplicates_after_normalisation_are_malformed(register):
    client = register("open")
    doc = problem(client.new_order("dup.example.com", "DUP.example.com."))
    assert doc["type"] == ERR + "malformed"
    assert len(doc["subproblems"]) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"identifiers": []},
        {"identifiers": "x"},
        {"identifiers": [{"type": "dns"}]},
        {
            "identifiers": [{"type": "dns", "value": "a.example.com"}],
            "notBefore": "2030-01-01T00:00:00Z",
        },
    ],
)
def test_malformed_new_orders(register, payload):
    client = register("open")
    assert _type(client.post(client.directory["newOrder"], payload)) == "malformed"


def test_order_of_another_account_is_not_found(register):
    a, b = register("open"), register("open")
    url = a.new_order("mine.example.com").headers["Location"]
    response = b.post(url)
    assert response.status_code == 404
    missing = b.post(url[:-3] + "zzz")
    assert problem(response) == problem(missing)


def test_order_fetch_needs_post_as_get(register):
    client = register("open")
    url = client.new_order("get.example.com").headers["Location"]
    assert _type(client.post(url, {})) == "malformed"


def test_authorizations_are_reused_within_one_account_only(register):
    a, b = register("open"), register("open")
    first = a.new_order("reuse.example.com").json()["authorizations"]
    again = a.new_order("reuse.example.com").json()["authorizations"]
    other = b.new_order("reuse.example.com").json()["authorizations"]
    assert first == again
    assert other != first


def test_http01_validation_makes_the_order_ready(flow):
    f = flow("open")
    order = f.ready_order("ready.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    assert authz["status"] == "valid"
    assert [c["status"] for c in authz["challenges"]] == ["valid"]
    assert authz["challenges"][0]["validated"].endswith("Z")


def test_failed_validation_makes_authz_and_order_invalid(flow):
    f = flow("open")
    order = f.order("wrong.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    f.http01.tokens[chall["token"]] = "wrong-key-authorization"
    response = f.client.post(chall["url"], {})
    assert response.status_code == 200
    assert response.json()["status"] in ("processing", "invalid")
    assert f'<{order["authorizations"][0]}>;rel="up"' in response.headers["Link"]
    f.server.drain()
    challenge = f.client.post(chall["url"]).json()
    assert challenge["status"] == "invalid"
    assert challenge["error"]["type"] == ERR + "incorrectResponse"
    assert "wrong-key-authorization" not in challenge["error"]["detail"]
    assert f.client.post(order["authorizations"][0]).json()["status"] == "invalid"
    assert f.client.post(order["url"]).json()["status"] == "invalid"


def test_challenge_response_must_be_an_empty_object(flow):
    f = flow("open")
    order = f.order("body.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    chall = authz["challenges"][0]
    assert _type(f.client.post(chall["url"], {"keyAuthorization": "x"})) == "malformed"


def test_responding_twice_does_not_restart_validation(flow):
    f = flow("open")
    order = f.ready_order("twice.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    again = f.client.post(authz["challenges"][0]["url"], {})
    assert again.status_code == 200 and again.json()["status"] == "valid"


def test_authorization_deactivation(flow):
    f = flow("open")
    order = f.ready_order("deact.alpha.localhost")
    url = order["authorizations"][0]
    response = f.client.post(url, {"status": "deactivated"})
    assert response.status_code == 200 and response.json()["status"] == "deactivated"
    assert _type(f.client.post(url, {"status": "deactivated"})) == "malformed"
    assert _type(f.client.post(url, {"status": "valid"})) == "malformed"
    assert f.client.post(order["url"]).json()["status"] == "invalid"


def test_suspended_tenant_refuses_new_orders(register, server):
    client = register("alpha")
    server.call(lambda: server.provisioner().set_tenant_status("alpha", _status("suspended")))
    try:
        response = client.new_order("suspended.example.com")
        assert response.status_code == 403
        assert "suspended" in problem(response)["detail"]
    finally:
        server.call(lambda: server.provisioner().set_tenant_status("alpha", _status("active")))
    assert client.new_order("active.example.com").status_code == 201


def _status(value: str):
    from certplane.server.model import TenantStatus

    return TenantStatus(value)
