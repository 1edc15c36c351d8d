"""certbot waits on an order the tenant policy holds for an approver, and gets its certificate
once the approver approves through the management API (RFC 8555 §7.4: the order stays
"processing" with Retry-After meanwhile)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from cptest.apiclient import ApiClient
from cptest.certbot_cli import CertbotHome
from cptest.databases import database_url
from cptest.server import ServerThread, make_config, provision
from cptest.webhook import WebhookReceiver
from cryptography import x509

pytestmark = [
    pytest.mark.e2e,
    # One backend: the approval path's database work is covered on both by the integration
    # suite (tests/integration/api/test_policy_flow.py); this proves certbot waits it out.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="module"),
]

POLICY = """
schema: certplane/policy/v1
approvals:
  deadline_hours: 1
  rules:
    - id: production-needs-approval
      when: {suffixes: [prod.localhost]}
"""


@pytest.fixture(scope="module")
def held(backend, tmp_path_factory, http01_port) -> Iterator[tuple[ServerThread, WebhookReceiver]]:
    directory = tmp_path_factory.mktemp(f"approval-{backend}")
    with database_url(backend, directory) as url, WebhookReceiver() as hooks:
        config = make_config(directory, url, http01_port=http01_port)
        provision(config, {"shop": True})
        server = ServerThread(config).start()
        try:
            yield server, hooks
        finally:
            server.stop()


def _activate(server: ServerThread, hooks: WebhookReceiver) -> None:
    """The approval policy in force (approval rules are sensitive: a second admin agrees)."""
    maker = ApiClient(server.api_url, server.token("mia", "tenant-admin", tenant="shop"))
    checker = ApiClient(server.api_url, server.token("max", "tenant-admin", tenant="shop"))
    secret = maker.put("/tenants/shop/webhook", {"url": hooks.url}).json()["secret"]
    hooks.secret = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    created = maker.request(
        "POST",
        "/tenants/shop/policies",
        data=POLICY.encode(),
        headers={"Content-Type": "application/yaml"},
    ).json()
    answer = maker.post(f"/tenants/shop/policies/{created['version']}/activate").json()
    assert answer["status"] == "pending"
    checker.post(f"/tenants/shop/approvals/{answer['approval']['id']}/approve", {})


def test_certbot_gets_its_certificate_once_approved(held, tmp_path, http01_port):
    server, hooks = held
    _activate(server, hooks)
    requester = ApiClient(server.api_url, server.token("rex", "requester", tenant="shop"))
    eab = requester.post("/tenants/shop/eab-keys", {"label": "certbot"}).json()
    home = CertbotHome(tmp_path / "certbot", eab["directory"])
    home.run("register", f"--eab-kid={eab['kid']}", f"--eab-hmac-key={eab['hmac_key']}")
    standalone = ("--standalone", "--http-01-address", "127.0.0.1")
    args = ("certonly", *standalone, "--http-01-port", str(http01_port), "-d", "www.prod.localhost")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(home.run, *args)
        # the first request announced was the policy change's; the second is certbot's order
        requested = hooks.wait_for("approval.requested", count=2)
        (approval,) = [
            r["body"]["data"]["approval"]
            for r in requested
            if r["body"]["data"]["approval"]["kind"] == "order"
        ]
        assert approval["summary"]["identifiers"] == [
            {"type": "dns", "value": "www.prod.localhost"}
        ]
        assert not running.done()  # certbot is still polling the processing order
        approver = ApiClient(server.api_url, server.token("ann", "approver", tenant="shop"))
        decided = approver.post(f"/tenants/shop/approvals/{approval['id']}/approve", {})
        assert decided.status_code == 200, decided.text
        result = running.result(timeout=180)
    assert result.returncode == 0
    cert = home.lineage("www.prod.localhost").cert
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["www.prod.localhost"]
    seen = [e.json().get("status") for e in result.exchanges() if e.body.startswith("{")]
    assert "processing" in seen  # certbot really waited on the held order
    hooks.wait_for("approval.approved")
    assert hooks.bad_signatures == 0
