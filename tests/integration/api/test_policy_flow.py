"""Tenant policies end to end: pushed and activated through the API, enforced at newAccount,
newOrder and finalize with the rule and version named; maker-checker on sensitive changes;
orders held for approval (approve, reject, deadline) with signed webhooks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cptest.apiclient import ApiClient, problem_type
from cptest.csr import csr_der
from cptest.databases import database_url
from cptest.jwsclient import ERR, RawClient, b64
from cptest.responders import Http01Responder
from cptest.server import ServerThread, make_config, provision
from cptest.webhook import WebhookReceiver
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from certplane.server.clock import FakeClock
from certplane.server.ra.provisioning import NewEab


class Deployment:
    def __init__(self, server: ServerThread, clock: FakeClock, http01: Http01Responder) -> None:
        self.server, self.clock, self.http01 = server, clock, http01
        self.admin = self.client("tenant-admin", "ada")

    def client(self, role: str, name: str) -> ApiClient:
        return ApiClient(self.server.api_url, self.server.token(name, role, tenant="pol"))

    def directory(self) -> str:
        return f"{self.server.config.server.base_url}/acme/pol/directory"

    def account(self, creator: ApiClient | None = None, **fields: Any) -> RawClient:
        """An ACME account bound with an EAB key that ``creator`` (default: ada) made."""
        made = (creator or self.admin).post("/tenants/pol/eab-keys", {"label": "t"}).json()
        client = RawClient(self.directory())
        response = client.new_account(eab=NewEab(made["kid"], made["hmac_key"]), **fields)
        assert response.status_code == 201, response.text
        client.eab_kid = made["kid"]  # type: ignore[attr-defined]
        return client

    def activate(self, document: dict[str, Any], by: ApiClient | None = None) -> dict[str, Any]:
        client = by or self.admin
        created = client.post("/tenants/pol/policies", {"document": document})
        assert created.status_code == 201, created.text
        version = created.json()["version"]
        answer = client.post(f"/tenants/pol/policies/{version}/activate").json()
        return {"version": version, **answer}

    def ready(self, client: RawClient, *names: str) -> dict[str, Any]:
        response = client.new_order(*names)
        assert response.status_code == 201, response.text
        order = {**response.json(), "url": response.headers["Location"]}
        for authz_url in order["authorizations"]:
            authz = client.post(authz_url).json()
            chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
            self.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
            client.post(chall["url"], {})
        self.server.drain()
        refreshed = client.post(order["url"]).json()
        assert refreshed["status"] == "ready", refreshed
        return {**refreshed, "url": order["url"]}

    def finalize(self, client: RawClient, order: dict[str, Any], key: Any = None) -> Any:
        names = [i["value"] for i in order["identifiers"]]
        return client.post(order["finalize"], {"csr": b64(csr_der(names, key=key))})


BASE = {"schema": "certplane/policy/v1"}


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def deployment(backend, tmp_path_factory, http01_port, http01, webhook) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp(f"policy-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port)
        # The tests run the job worker themselves (deadlines and retries on a fake clock).
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, run_worker=False)
        )
        provision(config, {"pol": True})
        clock = FakeClock()
        server = ServerThread(config, clock=clock).start()
        try:
            deployment = Deployment(server, clock, http01)
            hook = deployment.admin.put("/tenants/pol/webhook", {"url": webhook.url}).json()
            webhook.secret = _unb64(hook["secret"])
            yield deployment
        finally:
            server.stop()
        assert not server.sql_guard.violations


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_malformed_policy_points_at_each_field_and_changes_nothing(deployment):
    before = deployment.admin.get("/tenants/pol").json()["policy_version"]
    bad = {
        **BASE,
        "identifiers": {"allow": {"ip_ranges": ["10.0.0.0/8", "not-a-network"]}},
        "validity": {"default_days": 200, "max_days": 90},
    }
    response = deployment.admin.post("/tenants/pol/policies", {"document": bad})
    assert response.status_code == 422
    assert problem_type(response) == "invalid-policy"
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert "/identifiers/allow/ip_ranges/1" in pointers
    assert any(p.startswith("/validity") for p in pointers)
    yaml_bad = deployment.admin.request(
        "POST",
        "/tenants/pol/policies/validate",
        data=b"schema: certplane/policy/v1\nidentifiers:\n  wildcards: maybe\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert yaml_bad.status_code == 422
    assert [e["pointer"] for e in yaml_bad.json()["errors"]] == ["/identifiers/wildcards"]
    assert deployment.admin.get("/tenants/pol").json()["policy_version"] == before


def test_identifier_rules_refuse_each_name_with_rule_and_version(deployment):
    policy = {
        **BASE,
        "identifiers": {
            "allow": {"suffixes": ["pol.localhost"]},
            "deny": {"suffixes": ["internal.pol.localhost"]},
            "wildcards": False,
            "max_per_order": 3,
        },
    }
    activated = deployment.activate(policy)
    assert activated["status"] == "active", activated
    version = activated["version"]
    client = deployment.account()
    refused = client.new_order("db.internal.pol.localhost", "www.elsewhere.localhost")
    assert refused.status_code == 400
    body = refused.json()
    assert body["type"] == ERR + "rejectedIdentifier"
    subs = {s["identifier"]["value"]: s["detail"] for s in body["subproblems"]}
    assert set(subs) == {"db.internal.pol.localhost", "www.elsewhere.localhost"}
    assert "/identifiers/deny/suffixes/0" in subs["db.internal.pol.localhost"]
    assert f"v{version}" in subs["db.internal.pol.localhost"]
    assert "/identifiers/allow" in subs["www.elsewhere.localhost"]
    assert client.new_order("ok.pol.localhost").status_code == 201
    too_many = client.new_order(*(f"n{i}.pol.localhost" for i in range(4)))
    assert too_many.status_code == 400 and "/identifiers/max_per_order" in too_many.json()["detail"]
    events = deployment.admin.get(
        "/tenants/pol/events", params={"type": "policy.decision", "limit": "200"}
    ).json()["items"]
    decision = next(e for e in events if "/identifiers/deny/suffixes/0" in e["data"]["rules"])
    assert decision["data"]["policy_version"] == version
    assert decision["data"]["stage"] == "newOrder"


def test_finalize_refuses_a_key_type_outside_the_policy(deployment):
    deployment.activate({**BASE, "keys": {"allowed": ["ec-p256"]}})
    client = deployment.account()
    order = deployment.ready(client, "keys.pol.localhost")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = deployment.finalize(client, order, key=rsa_key)
    assert refused.status_code == 400, refused.text
    assert refused.json()["type"] == ERR + "badCSR"
    assert "/keys/allowed" in refused.json()["detail"]
    assert client.post(order["url"]).json()["status"] == "ready"  # nothing half-written
    issued = deployment.finalize(client, order)
    assert issued.status_code == 200 and issued.json()["status"] == "valid"


def test_an_eab_key_can_be_narrowed(deployment):
    ci_account = deployment.account()
    other = deployment.account()
    kid = ci_account.eab_kid
    deployment.activate(
        {**BASE, "eab": {kid: {"identifiers": {"allow": {"suffixes": ["ci.pol.localhost"]}}}}}
    )
    assert ci_account.new_order("build.ci.pol.localhost").status_code == 201
    refused = ci_account.new_order("www.pol.localhost")
    assert refused.status_code == 400
    assert f"/eab/{kid}/identifiers/allow" in refused.json()["subproblems"][0]["detail"]
    assert other.new_order("www.pol.localhost").status_code == 201


def test_new_account_contact_rules(deployment):
    deployment.activate({**BASE, "accounts": {"contact_domains": ["pol.example"]}})
    made = deployment.admin.post("/tenants/pol/eab-keys", {}).json()
    client = RawClient(deployment.directory())
    refused = client.new_account(
        eab=NewEab(made["kid"], made["hmac_key"]), contact=["mailto:x@elsewhere.example"]
    )
    assert refused.status_code == 400
    assert refused.json()["type"] == ERR + "invalidContact"
    assert "/accounts/contact_domains" in refused.json()["detail"]
    # the refusal bound nothing: the same key still works with an acceptable contact
    fine = client.new_account(
        eab=NewEab(made["kid"], made["hmac_key"]), contact=["mailto:x@pol.example"]
    )
    assert fine.status_code == 201, fine.text


def test_cel_rules_decide_and_fail_closed(deployment):
    rule = {
        "id": "no-test-hosts",
        "at": "order",
        "expression": '!identifiers.exists(i, i.value.startsWith("test."))',
        "message": "test hosts are not certified here",
    }
    deployment.activate({**BASE, "rules": [rule]})
    client = deployment.account()
    refused = client.new_order("test.pol.localhost")
    assert refused.status_code == 400
    assert "/rules/0" in refused.json()["detail"]
    assert client.new_order("prod.pol.localhost").status_code == 201
    nested = "[1,2,3,4,5,6,7,8,9,10]"  # 10^7 evaluations: far beyond the time limit
    runaway = "".join(f"{nested}.all(x{i}, " for i in range(7)) + "true" + ")" * 7
    deployment.activate({**BASE, "rules": [{**rule, "id": "runaway", "expression": runaway}]})
    timed_out = client.new_order("slow.pol.localhost")
    assert timed_out.status_code == 400
    assert "/rules/0" in timed_out.json()["detail"]


def test_sensitive_changes_need_a_second_tenant_admin(deployment):
    maker = deployment.admin
    answer = deployment.activate({**BASE, "validity": {"default_days": 30, "max_days": 30}})
    assert answer["status"] == "pending"
    assert "/validity/max_days" in answer["sensitive"]
    approval_id = answer["approval"]["id"]
    own = maker.post(f"/tenants/pol/approvals/{approval_id}/approve", {})
    assert own.status_code == 403 and problem_type(own) == "separation-of-duties"
    approver = deployment.client("approver", "april")
    wrong_role = approver.post(f"/tenants/pol/approvals/{approval_id}/approve", {})
    assert wrong_role.status_code == 403 and problem_type(wrong_role) == "forbidden"
    minted = maker.post(
        "/tenants/pol/tokens", {"principal": "ada-second", "roles": ["tenant-admin"]}
    ).json()
    sock_puppet = ApiClient(deployment.server.api_url, minted["token"])
    puppet = sock_puppet.post(f"/tenants/pol/approvals/{approval_id}/approve", {})
    assert puppet.status_code == 403 and problem_type(puppet) == "separation-of-duties"
    assert maker.get("/tenants/pol").json()["policy_version"] != answer["version"]
    checker = deployment.client("tenant-admin", "carl")
    approved = checker.post(f"/tenants/pol/approvals/{approval_id}/approve", {"reason": "ok"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert maker.get("/tenants/pol").json()["policy_version"] == answer["version"]
    twice = checker.post(f"/tenants/pol/approvals/{approval_id}/approve", {})
    assert twice.status_code == 409


def _activate_approved(deployment, document: dict[str, Any]) -> int:
    """Activate ``document``; when it is a sensitive change, a second tenant-admin approves."""
    answer = deployment.activate(document)
    if answer["status"] == "pending":
        checker = deployment.client("tenant-admin", "cleo")
        decided = checker.post(f"/tenants/pol/approvals/{answer['approval']['id']}/approve", {})
        assert decided.status_code == 200, decided.text
    return int(answer["version"])


def test_profiles_choose_validity_and_are_offered(deployment):
    profiles = {
        "default": {"issuer": None, "validity_days": 30},
        "short": {"issuer": None, "validity_days": 7, "description": "a week"},
    }
    _activate_approved(
        deployment, {**BASE, "validity": {"default_days": 30, "max_days": 30}, "profiles": profiles}
    )
    meta = RawClient(deployment.directory()).directory["meta"]
    assert meta["profiles"] == {"default": "", "short": "a week"}
    client = deployment.account()
    identifiers = [{"type": "dns", "value": "week.pol.localhost"}]
    unknown = client.post(
        client.directory["newOrder"], {"identifiers": identifiers, "profile": "yearly"}
    )
    assert unknown.status_code == 400 and "yearly" in unknown.json()["detail"]
    created = client.post(
        client.directory["newOrder"], {"identifiers": identifiers, "profile": "short"}
    )
    assert created.status_code == 201, created.text
    order = {**created.json(), "url": created.headers["Location"]}
    for authz_url in order["authorizations"]:
        authz = client.post(authz_url).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        deployment.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
        client.post(chall["url"], {})
    deployment.server.drain()
    issued = deployment.finalize(client, client.post(order["url"]).json() | order)
    assert issued.json()["status"] == "valid", issued.text
    pem = client.post(issued.json()["certificate"]).text
    leaf = x509.load_pem_x509_certificate(pem.encode())
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=7) <= lifetime <= timedelta(days=7, minutes=2)


def test_a_profile_must_map_to_an_active_issuer(deployment):
    bad = {**BASE, "profiles": {"default": {"issuer": "no-such-issuer", "validity_days": 90}}}
    response = deployment.admin.post("/tenants/pol/policies", {"document": bad})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/profiles/default/issuer"]


def _held_order(deployment, requester: ApiClient, name: str) -> tuple[RawClient, dict, dict]:
    client = deployment.account(creator=requester)
    order = deployment.ready(client, name)
    response = deployment.finalize(client, order)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processing"
    assert int(response.headers["Retry-After"]) >= 1
    pending = deployment.admin.get(
        "/tenants/pol/approvals", params={"status": "pending", "limit": "200"}
    ).json()["items"]
    approval = next(a for a in pending if a["object_id"] == order["url"].rsplit("/", 1)[1])
    return client, order, approval


APPROVE_POL = {
    **BASE,
    "approvals": {
        "deadline_hours": 24,
        "rules": [{"id": "held", "when": {"suffixes": ["held.pol.localhost"]}}],
    },
}


@pytest.fixture(scope="module")
def approval_policy(deployment):
    answer = deployment.activate(APPROVE_POL)
    if answer["status"] == "pending":  # approval rules are sensitive: a second admin agrees
        checker = deployment.client("tenant-admin", "carol")
        checker.post(f"/tenants/pol/approvals/{answer['approval']['id']}/approve", {})
    return answer["version"]


def test_approved_orders_are_issued(deployment, approval_policy, webhook):
    requester = deployment.client("requester", "rita")
    client, order, approval = _held_order(deployment, requester, "a.held.pol.localhost")
    assert approval["rule"] == "/approvals/rules/0"
    assert approval["requested_by"] == "api:rita"
    rita_decides = requester.post(f"/tenants/pol/approvals/{approval['id']}/approve", {})
    assert rita_decides.status_code == 403
    approver = deployment.client("approver", "anna")
    approved = approver.post(f"/tenants/pol/approvals/{approval['id']}/approve", {})
    assert approved.status_code == 200, approved.text
    deployment.server.drain()
    final = client.post(order["url"]).json()
    assert final["status"] == "valid", final
    assert client.post(final["certificate"]).status_code == 200
    _run_due_jobs(deployment)
    events = [w["body"]["data"]["approval"]["id"] for w in webhook.of("approval.approved")]
    assert approval["id"] in events
    assert webhook.bad_signatures == 0


def test_rejected_orders_become_invalid_with_the_reason(deployment, approval_policy):
    requester = deployment.client("requester", "rob")
    client, order, approval = _held_order(deployment, requester, "r.held.pol.localhost")
    approver = deployment.client("approver", "abe")
    rejected = approver.post(
        f"/tenants/pol/approvals/{approval['id']}/reject", {"reason": "not our host"}
    )
    assert rejected.status_code == 200
    final = client.post(order["url"]).json()
    assert final["status"] == "invalid"
    assert final["error"]["type"] == ERR + "unauthorized"
    assert "not our host" in final["error"]["detail"]


def _run_due_jobs(deployment) -> None:
    """Run every job that is due now (the worker claims a batch at a time)."""
    while deployment.server.run_worker_once():
        pass


def _deliveries(deployment) -> list[dict[str, Any]]:
    server = deployment.server

    async def read() -> list[dict[str, Any]]:
        from certplane.server.app import SERVICES
        from certplane.server.storage.scope import TenantScope

        uow = server.app[SERVICES].uow
        tenant = await uow.tenants.by_slug("pol")
        async with uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            return [dict(row) for row in await tx.webhooks.all()]

    return list(server.call(read))


def test_failed_webhook_deliveries_are_retried_then_given_up(deployment, approval_policy, webhook):
    _run_due_jobs(deployment)  # deliver whatever earlier tests queued
    webhook.answer_status = 500
    try:
        requester = deployment.client("requester", "ray")
        _held_order(deployment, requester, "w.held.pol.localhost")
        seen = len(webhook.received)
        for attempt in range(1, 9):
            _run_due_jobs(deployment)
            (delivery,) = [d for d in _deliveries(deployment) if d["status"] != "delivered"]
            assert delivery["attempts"] == attempt
            assert "HTTP 500" in delivery["last_error"]
            deployment.clock.advance(timedelta(hours=1))
        assert delivery["status"] == "failed"
        assert len(webhook.received) == seen + 8  # eight attempts, then no more
        _run_due_jobs(deployment)
        assert len(webhook.received) == seen + 8
        ids = {r["delivery"] for r in webhook.received[seen:]}
        assert ids == {delivery["id"]}  # every retry carries the same delivery id
    finally:
        webhook.answer_status = 200


def test_undecided_orders_expire_at_the_deadline(deployment, approval_policy, webhook):
    requester = deployment.client("requester", "ria")
    client, order, approval = _held_order(deployment, requester, "e.held.pol.localhost")
    _run_due_jobs(deployment)
    assert approval["id"] in [
        w["body"]["data"]["approval"]["id"] for w in webhook.of("approval.requested")
    ]
    deployment.clock.advance(timedelta(hours=25))
    _run_due_jobs(deployment)
    final = client.post(order["url"]).json()
    assert final["status"] == "invalid"
    assert "deadline" in final["error"]["detail"]
    shown = deployment.admin.get(f"/tenants/pol/approvals/{approval['id']}").json()
    assert shown["status"] == "expired"
