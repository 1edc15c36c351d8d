"""The management API's framework: bearer tokens, tenant scoping, problems, pagination,
Idempotency-Key, and the OpenAPI document it serves."""

from __future__ import annotations

import uuid

import pytest
import requests
from cptest.apiclient import ApiClient, problem_type


def test_openapi_document_is_served_without_a_token(api_server):
    response = requests.get(api_server.api_url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/tenants/{tenant}/policies" in document["paths"]


def test_whoami(as_role):
    body = as_role("approver", tenant="alpha", name="ann").get("/whoami").json()
    assert body["principal"] == "ann"
    assert body["roles"] == ["approver"]
    assert body["tenant"] == "alpha"


def test_missing_malformed_and_unknown_tokens_are_401(api_server):
    cases = [None, "Basic abc", "Bearer nonsense", "Bearer cpt_" + "A" * 22 + "_" + "b" * 43]
    for header in cases:
        headers = {} if header is None else {"Authorization": header}
        response = requests.get(api_server.api_url + "/whoami", headers=headers, timeout=30)
        assert response.status_code == 401, header
        assert problem_type(response) == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_real_token_id_is_401(api_server):
    token = api_server.token("eve", "auditor", tenant="alpha")
    token_id = token.split("_")[1]
    forged = f"cpt_{token_id}_{'x' * 43}"
    response = ApiClient(api_server.api_url, forged).get("/whoami")
    assert response.status_code == 401


def test_a_revoked_token_is_401_at_once(api_server, as_role):
    admin = as_role("tenant-admin", tenant="alpha")
    created = admin.post(
        "/tenants/alpha/tokens", {"principal": "temp", "roles": ["auditor"]}
    ).json()
    temp = ApiClient(api_server.api_url, created["token"])
    assert temp.get("/whoami").status_code == 200
    revoked = admin.post(f"/tenants/alpha/tokens/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert temp.get("/whoami").status_code == 401
    again = admin.post(f"/tenants/alpha/tokens/{created['id']}/revoke")
    assert again.status_code == 409


def test_a_tenant_token_sees_no_other_tenant(as_role):
    alpha_admin = as_role("tenant-admin", tenant="alpha")
    for path in ("/tenants/beta", "/tenants/beta/eab-keys", "/tenants/nosuch"):
        response = alpha_admin.get(path)
        assert response.status_code == 404, path
        assert problem_type(response) == "not-found"


def test_forbidden_names_the_permission(as_role):
    response = as_role("auditor", tenant="alpha").post("/tenants/alpha/eab-keys", {})
    assert response.status_code == 403
    assert problem_type(response) == "forbidden"
    assert "eab:create" in response.json()["detail"]


def test_unknown_paths_and_methods_are_problems(as_role):
    admin = as_role("platform-admin")
    missing = admin.get("/no/such/thing")
    assert missing.status_code == 404 and problem_type(missing) == "not-found"
    wrong = admin.request("DELETE", "/tenants")
    assert wrong.status_code == 405 and problem_type(wrong) == "method-not-allowed"


def test_bad_bodies_point_at_the_field(as_role):
    admin = as_role("platform-admin")
    response = admin.post("/tenants", {"slug": "Not A Slug", "extra": 1})
    assert response.status_code == 400
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"", "/slug"}  # the unknown member is reported on the object itself
    not_json = admin.request(
        "POST", "/tenants", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    wrong_type = admin.request(
        "POST", "/tenants", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415


def test_bad_query_parameters_point_at_them(as_role):
    admin = as_role("tenant-admin", tenant="alpha")
    response = admin.get("/tenants/alpha/events", params={"limit": "0", "since": "yesterday"})
    assert response.status_code == 400
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"/query/limit", "/query/since"}
    cursor = admin.get("/tenants/alpha/events", params={"cursor": "garbage"})
    assert cursor.status_code == 400


def test_pagination_walks_every_item_once(as_role):
    admin = as_role("tenant-admin", tenant="beta")
    made = {
        admin.post("/tenants/beta/eab-keys", {"label": f"k{i}"}).json()["kid"] for i in range(5)
    }
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = admin.get("/tenants/beta/eab-keys", params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["kid"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen))


def test_idempotency_key_replays_the_first_answer(as_role):
    admin = as_role("tenant-admin", tenant="alpha", name="idem")
    key = str(uuid.uuid4())
    first = admin.post(
        "/tenants/alpha/eab-keys", {"label": "once"}, headers={"Idempotency-Key": key}
    )
    again = admin.post(
        "/tenants/alpha/eab-keys", {"label": "once"}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    keys = admin.get("/tenants/alpha/eab-keys", params={"limit": "200"}).json()["items"]
    assert sum(1 for k in keys if k["label"] == "once") == 1
    other = admin.post(
        "/tenants/alpha/eab-keys", {"label": "twice"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422 and problem_type(other) == "idempotency-key-reused"


def test_idempotency_keys_belong_to_their_token(as_role):
    key = str(uuid.uuid4())
    one = as_role("tenant-admin", tenant="alpha", name="one")
    two = as_role("tenant-admin", tenant="alpha", name="two")
    a = one.post("/tenants/alpha/eab-keys", {"label": "a"}, headers={"Idempotency-Key": key})
    b = two.post("/tenants/alpha/eab-keys", {"label": "a"}, headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 201
    assert a.json()["kid"] != b.json()["kid"]


def test_a_refusal_is_replayed_too(as_role):
    admin = as_role("platform-admin", name="refused")
    key = str(uuid.uuid4())
    first = admin.post("/tenants", {"slug": "alpha"}, headers={"Idempotency-Key": key})
    assert first.status_code == 409
    again = admin.post("/tenants", {"slug": "alpha"}, headers={"Idempotency-Key": key})
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"


def test_stored_answers_keep_no_secret_in_clear(api_server, as_role):
    """An answer kept for Idempotency-Key replays may hold a secret shown once: it is sealed."""
    admin = as_role("tenant-admin", tenant="alpha", name="sealed")
    key = str(uuid.uuid4())
    created = admin.post("/tenants/alpha/eab-keys", {}, headers={"Idempotency-Key": key}).json()

    async def stored_bodies() -> list[str]:
        from sqlalchemy import select

        from certplane.server.app import DATABASE
        from certplane.server.storage import tables

        async with api_server.app[DATABASE].transaction(write=False) as conn:
            rows = await conn.execute(select(tables.idempotency_keys.c.body))
            return [row["body"] or "" for row in rows.mappings().all()]

    bodies = api_server.call(stored_bodies)
    assert bodies
    assert not any(created["hmac_key"] in body or created["kid"] in body for body in bodies)
    replay = admin.post("/tenants/alpha/eab-keys", {}, headers={"Idempotency-Key": key})
    assert replay.json()["hmac_key"] == created["hmac_key"]


def test_a_tenant_name_must_fit_the_ca_common_name(as_role, api_server):
    admin = as_role("platform-admin", name="namer")
    refused = admin.post("/tenants", {"slug": "longname", "name": "N" * 33})
    assert refused.status_code == 400 and refused.json()["errors"][0]["pointer"] == "/name"
    long_slug = "s" * 40  # without a name, the display name is the slug cut to fit
    created = admin.post("/tenants", {"slug": long_slug})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "s" * 32


def test_the_control_plane_refuses_a_name_too_long_for_a_common_name(api_server):
    from certplane.server.ra.provisioning import ProvisioningError

    with pytest.raises(ProvisioningError, match="1-32 printable"):
        api_server.call(lambda: api_server.provisioner().create_tenant("toolong", "N" * 33))
    with pytest.raises(ProvisioningError):
        api_server.call(lambda: api_server.provisioner().create_tenant("ctrl", "bad\nname"))
