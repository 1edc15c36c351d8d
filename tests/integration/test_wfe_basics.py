"""Directory, nonces, routing errors and response headers (RFC 8555 §6.5, §6.7, §7.1, §7.2)."""

from __future__ import annotations

import requests
from cptest.jwsclient import ERR, PROBLEM, problem


def test_directory_lists_every_resource_and_meta(server, platform):
    response = requests.get(platform.directory("alpha"), timeout=10)
    assert response.status_code == 200
    body = response.json()
    base = f"{platform.config.server.base_url}/acme/alpha"
    assert body["newNonce"] == f"{base}/new-nonce"
    assert body["newAccount"] == f"{base}/new-account"
    assert body["newOrder"] == f"{base}/new-order"
    assert body["revokeCert"] == f"{base}/revoke-cert"
    assert body["keyChange"] == f"{base}/key-change"
    assert body["meta"]["externalAccountRequired"] is True
    assert body["meta"]["caaIdentities"] == ["certplane.test"]


def test_external_account_required_is_per_tenant(server, platform):
    meta = requests.get(platform.directory("open"), timeout=10).json()["meta"]
    assert meta["externalAccountRequired"] is False


def test_new_nonce_head_and_get(server, platform):
    url = requests.get(platform.directory("alpha"), timeout=10).json()["newNonce"]
    head = requests.head(url, timeout=10)
    get = requests.get(url, timeout=10)
    assert head.status_code == 200 and get.status_code == 204
    for response in (head, get):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Replay-Nonce"]
        assert f'<{platform.directory("alpha")}>;rel="index"' in response.headers["Link"]
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]


def test_unknown_tenant_is_a_problem_404_without_nonce(server, platform):
    url = platform.directory("alpha").replace("/alpha/", "/nobody/")
    response = requests.get(url, timeout=10)
    doc = problem(response)
    assert response.status_code == 404
    assert doc == {"type": ERR + "malformed", "detail": "tenant not found", "status": 404}
    assert "Replay-Nonce" not in response.headers


def test_unknown_path_and_wrong_method_are_problem_documents(server, platform):
    base = platform.config.server.base_url
    missing = requests.get(f"{base}/acme/alpha/no-such-thing", timeout=10)
    assert problem(missing)["status"] == 404
    assert missing.headers["Replay-Nonce"]
    wrong = requests.get(f"{base}/acme/alpha/new-order", timeout=10)
    assert problem(wrong) == {
        "type": ERR + "malformed",
        "detail": "method not allowed",
        "status": 405,
    }
    nowhere = requests.get(f"{base}/", timeout=10)
    assert nowhere.headers["Content-Type"].startswith(PROBLEM)
    assert nowhere.status_code == 404


def test_post_to_directory_is_405(server, platform):
    response = requests.post(platform.directory("alpha"), data=b"{}", timeout=10)
    assert problem(response)["status"] == 405
