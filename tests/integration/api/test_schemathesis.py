"""schemathesis against the management API's OpenAPI document: no 5xx, no answer that breaks it.

Every operation is fuzzed (schema-valid and schema-invalid input; schemathesis's coverage and
fuzzing phases) as a platform-admin and as a tenant-admin of "alpha". Every answer must pass
not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance and response_headers_conformance. The server also runs with
``check_responses=True``: a handler answer that breaks its own declared schema is a 500 here.

    pytest tests/integration/api/test_schemathesis.py                        # ~30 s
    pytest tests/integration/api/test_schemathesis.py -k "whoami and tenant"  # one operation

Which document: pytest makes one item per operation at collection, before any server runs, so
the schema is built in-process by the function that serves ``/api/v1/openapi.json``, and
``served_document`` proves that the running server serves that very document. (The loader that
would fetch it at run time, ``schemathesis.pytest.from_fixture``, fails on pytest 9: it sets
``Function._nodeid``, which pytest 9 no longer has.) The role is a parametrized fixture, which
also gives each item a node id of its own, ``test_api[POST /tenants][platform-admin]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from cptest.apiclient import ApiClient
from cptest.secrets import remember
from cptest.server import ServerThread

from certplane.server.admin import handlers
from certplane.server.admin.openapi import openapi_document

# Fuzzing mutates the server (tenants created and suspended, tokens and EAB keys minted,
# policies stored): it runs against a server of its own. ``api_server`` (conftest.py) is
# module-scoped, so the one this module gets is private to it and gone after it.
#
# NOTE: SQLite only, to keep CI bounded. Whether an answer matches the document is decided by
# the handlers and schemas, which both backends share, and the API refuses at its edge the one
# kind of input they store differently (NUL and lone surrogates: PostgreSQL refuses them as
# text). Every other API test runs on both backends.
BACKEND = "sqlite"
TENANT = "alpha"
SEED = 20240501  # reproducible (with "deterministic"); change it locally to explore
MAX_EXAMPLES = 20  # fuzzing examples per operation, besides the coverage phase's cases
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]
SHOWN_ONCE = ("token", "hmac_key", "secret")
IDEMPOTENCY_KEY = "Idempotency-Key"
POLICY = {"schema": "certplane/policy/v1"}

handlers.register()
DOCUMENT = openapi_document("http://certplane.test")
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The bearer token is the caller's (below), never a generated one.
            "with-security-parameters": False,
        },
        # Tenant paths act on one real tenant: a random slug is a 404 before any handler runs.
        "parameters": {"path.tenant": TENANT},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@dataclass(frozen=True)
class Caller:
    base_url: str
    headers: Mapping[str, str]


@pytest.fixture(scope="module")
def backend() -> str:
    """Overrides the sqlite/postgresql parameter of tests/conftest.py here (see above)."""
    return BACKEND


@pytest.fixture(scope="module")
def served_document(api_server: ServerThread) -> dict[str, Any]:
    """The running server's document: the one these tests were generated from."""
    response = requests.get(api_server.api_url + "/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    served: dict[str, Any] = response.json()
    for part in ("openapi", "paths", "components", "servers"):
        assert served[part] == DOCUMENT[part], f"the served document differs in {part}"
    return served


@pytest.fixture(scope="module")
def seeded(api_server: ServerThread) -> None:
    """Policy versions 1 and 2 in TENANT, so that small version numbers reach the handlers
    (every other id is random: fuzzed ids find nothing, and the handlers answer 404)."""
    seeder = ApiClient(
        api_server.api_url, api_server.token("seeder", "tenant-admin", tenant=TENANT)
    )
    for _ in range(2):
        created = seeder.post(f"/tenants/{TENANT}/policies", {"document": POLICY})
        assert created.status_code == 201, created.text


@pytest.fixture(scope="module", params=["platform-admin", "tenant-admin"])
def caller(
    request: pytest.FixtureRequest,
    api_server: ServerThread,
    served_document: dict[str, Any],
    seeded: None,
) -> Caller:
    """A platform-admin, or a tenant-admin of TENANT."""
    role = str(request.param)
    tenant = None if role == "platform-admin" else TENANT
    token = api_server.token(f"fuzz-{role}", role, tenant=tenant)
    return Caller(api_server.api_url, {"Authorization": f"Bearer {token}"})


def _remember_shown_secrets(response: schemathesis.Response) -> None:
    """Secrets shown once (new tokens, EAB and webhook keys) join the suite's log scan."""
    if not response.headers.get("content-type", [""])[0].startswith("application/json"):
        return
    body = response.json()
    if not isinstance(body, dict):
        return
    for field in SHOWN_ONCE:
        value = body.get(field)
        if isinstance(value, str) and len(value) >= 16:
            remember(value)
            remember(value.rsplit("_", 1)[-1])


_KEYS = itertools.count()


def _fresh_idempotency_key(case: schemathesis.Case[Any]) -> None:
    """A valid Idempotency-Key made unique. schemathesis draws the same few keys ("0", "00")
    for many requests, and the API rightly answers a reused key with the first answer or a 422
    (tests/integration/api/test_api_basics.py): the handler would never run."""
    key = case.headers.get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and 1 <= len(key) <= 255 and key.isprintable():
        case.headers[IDEMPOTENCY_KEY] = f"{next(_KEYS)}-{key}"[:255]


@schema.parametrize()
def test_api(case: schemathesis.Case[Any], caller: Caller) -> None:
    _fresh_idempotency_key(case)
    response = case.call(base_url=caller.base_url, headers=dict(caller.headers), timeout=30)
    _remember_shown_secrets(response)
    case.validate_response(response, checks=CHECKS)
