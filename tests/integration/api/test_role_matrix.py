"""Every role against every endpoint of the management API, checked against the written matrix
(docs/permissions.md, generated from policy/rbac.py and the endpoint table)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cptest.apiclient import ApiClient, problem_type

from certplane.policy.rbac import Role
from certplane.server.admin import handlers
from certplane.server.admin.endpoints import API
from certplane.server.admin.matrix import ROLE_ORDER, permission_matrix_markdown

handlers.register()
MATRIX_FILE = Path(__file__).parents[3] / "docs" / "permissions.md"
# Path parameters: the tenant the roles belong to, and ids that exist nowhere (a call that is
# allowed then ends in 404 or 400, one that is not ends in 403 before anything is looked up).
PATH_VALUES = {
    "tenant": "alpha",
    "version": "999999",
    **dict.fromkeys(("kid", "approval", "account", "order", "certificate", "token"), "nope"),
}
_PARAM = re.compile(r"{([a-z_]+)}")


def test_the_committed_matrix_is_the_generated_one():
    assert MATRIX_FILE.read_text() == permission_matrix_markdown(), (
        "docs/permissions.md is stale: python -m certplane.server.admin.matrix > "
        "docs/permissions.md"
    )


def _matrix() -> dict[tuple[str, str], dict[str, str]]:
    """(method, path) -> role -> cell, read back from the committed document."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for line in MATRIX_FILE.read_text().splitlines():
        match = re.match(r"\| `(\w+) /api/v1(\S+)` \| [^|]+ \|(.*)\|$", line)
        if match:
            cells = [c.strip() for c in match.group(3).split("|")]
            rows[(match.group(1), match.group(2))] = dict(
                zip((r.value for r in ROLE_ORDER), cells, strict=True)
            )
    return rows


MATRIX = _matrix()
ENDPOINTS = [e for e in API.endpoints if e.permission is not None]


def test_every_endpoint_is_in_the_matrix():
    assert {(e.method, e.path) for e in API.endpoints} == set(MATRIX)


def _tenant_of(role: Role) -> str | None:
    return None if role.on_platform else "alpha"


@pytest.fixture(scope="module")
def clients(api_server):
    made = {}
    for role in Role:
        token = api_server.token(f"matrix-{role.value}", role.value, tenant=_tenant_of(role))
        made[role] = token
    return made


def _call(client: ApiClient, endpoint) -> object:
    path = _PARAM.sub(lambda m: PATH_VALUES[m.group(1)], endpoint.path)
    if endpoint.method == "GET":
        return client.get(path)
    # An empty object: allowed calls fail validation (400) or find nothing (404) rather than
    # changing anything, except the few whose every field is optional.
    body = {"reason": "matrix"} if "approv" in path else {}
    return client.request(endpoint.method, path, json=body)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_role_against_endpoint(api_server, clients, endpoint):
    for role in Role:
        expected = MATRIX[(endpoint.method, endpoint.path)][role.value]
        client = ApiClient(api_server.api_url, clients[role])
        response = _call(client, endpoint)
        if expected == "-":
            assert response.status_code == 403, (role, response.text)
            assert problem_type(response) == "forbidden"
            continue
        if expected == "reason":
            assert response.status_code == 403, (role, response.text)
            assert problem_type(response) == "reason-required"
            client = ApiClient(api_server.api_url, clients[role], reason="matrix walk")
            response = _call(client, endpoint)
        assert response.status_code not in (401, 403, 405), (role, response.text)
        assert response.status_code < 500, (role, response.text)


def test_support_access_is_recorded_with_its_reason(api_server, as_role):
    support = ApiClient(
        api_server.api_url,
        api_server.token("sue", "support"),
        reason="ticket 4711: customer cannot issue",
    )
    assert support.get("/tenants/beta").status_code == 200
    events = (
        as_role("auditor", tenant="beta")
        .get("/tenants/beta/events", params={"type": "support.access", "limit": "200"})
        .json()["items"]
    )
    assert any(
        e["actor"] == "api:sue" and e["data"]["reason"] == "ticket 4711: customer cannot issue"
        for e in events
    )
