"""``certplane api …`` and ``certplane token create``, run in-process against a live API:
human output, --json, problems on stderr with exit code 1, pagination, Idempotency-Key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from cptest.jwsclient import RawClient
from cptest.net import free_port
from cptest.secrets import remember

from certplane.server.api_cli import (
    COMMANDS,
    TOKEN_ENV,
    URL_ENV,
    endpoint_table,
    path_parameters,
    reachable_operations,
    render,
)
from certplane.server.cli import main

MINIMAL = {"schema": "certplane/policy/v1", "identifiers": {"wildcards": False}}
MINIMAL_YAML = "schema: certplane/policy/v1\nidentifiers:\n  wildcards: false\n"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def field(self, name: str) -> str:
        """The value of a ``name: value`` line of human output."""
        found = re.search(rf"^{re.escape(name)}: (.*)$", self.out, re.MULTILINE)
        assert found, self.out
        return found.group(1)


@pytest.fixture
def cli(api_server, monkeypatch, capsys):
    """``cli(*argv, token=…, check=True)``: ``certplane`` as a script runs it; by default with
    a fresh platform-admin token in $CERTPLANE_API_TOKEN (``token=None``: no token at all)."""
    monkeypatch.delenv("CERTPLANE_CONFIG", raising=False)
    monkeypatch.setenv(URL_ENV, api_server.api_url)
    monkeypatch.setenv("CERTPLANE_DATABASE__URL", api_server.config.database.url)
    admin = api_server.token("root", "platform-admin")

    def run(*argv: str, token: str | None = admin, check: bool = True) -> Run:
        if token is None:
            monkeypatch.delenv(TOKEN_ENV, raising=False)
        else:
            monkeypatch.setenv(TOKEN_ENV, token)
        code = main(list(argv))
        out, err = capsys.readouterr()
        if check:
            assert code == 0, err
        return Run(code, out, err)

    return run


@pytest.fixture
def admin_of(api_server):
    """A tenant-admin token of a tenant (platform admins do not write inside tenants)."""
    return lambda slug: api_server.token(f"admin@{slug}", "tenant-admin", tenant=slug)


def _failed(result: Run, message: str) -> None:
    assert result.code == 1, result.out
    assert result.err.startswith("certplane: "), result.err
    assert message in result.err, result.err
    assert "Traceback" not in result.err


def test_every_operation_is_reachable_from_the_command_line():
    table = endpoint_table()
    assert set(table) - reachable_operations() == set(), "add a row to api_cli.COMMANDS"
    assert reachable_operations() <= set(table)
    for command in COMMANDS:
        if command.tenant_variant:
            tenant_path = path_parameters(table[command.tenant_variant].path)
            assert tenant_path == ["tenant", *path_parameters(table[command.operation_id].path)]
            assert table[command.tenant_variant].query == table[command.operation_id].query


def test_token_create_mints_a_token_the_api_accepts(cli):
    created = cli("--json", "token", "create", "--principal", "ops", "--role", "platform-admin",
                  "--label", "bootstrap").json  # fmt: skip
    remember(created["token"])
    assert created["principal"] == "ops" and created["roles"] == ["platform-admin"]
    assert created["tenant"] is None and created["created_by"] == "operator"
    who = cli("--json", "api", "whoami", token=created["token"]).json
    assert who["principal"] == "ops" and who["token_id"] == created["id"]

    human = cli("token", "create", "--principal", "aud", "--role", "auditor", "--tenant", "alpha",
                "--days", "2")  # fmt: skip
    assert "it will not be shown again" in human.out
    token = human.field("token")
    remember(token)
    who = cli("api", "whoami", token=token)
    assert who.field("principal") == "aud" and who.field("tenant") == "alpha"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--tenant", "nosuch", "--role", "auditor"), "tenant 'nosuch' does not exist"),
        (("--tenant", "alpha", "--role", "platform-admin"), "not a tenant role: platform-admin"),
        (("--role", "auditor"), "not a platform role: auditor"),
        (("--role", "boss"), "unknown role 'boss'"),
        (("--role", "support", "--days", "400"), "lifetime"),
        (("--role", "support", "--days", "9999999999"), "days"),
    ],
)
def test_token_create_errors_are_clear(cli, options, message):
    _failed(cli("token", "create", "--principal", "x", *options, check=False), message)


def test_token_create_needs_a_current_schema(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("CERTPLANE_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    result = cli("token", "create", "--principal", "x", "--role", "support", check=False)
    _failed(result, "run `certplane db upgrade`")


def test_tenants(cli):
    created = cli("--json", "api", "tenants", "create", "gamma", "--name", "Gamma",
                  "--no-eab").json  # fmt: skip
    assert created["slug"] == "gamma" and created["external_account_required"] is False
    listing = cli("api", "tenants", "list").out.splitlines()
    assert listing[0].split() == ["SLUG", "STATUS", "TIER", "POLICY_VERSION", "DIRECTORY"]
    assert any(line.startswith("gamma ") for line in listing)
    assert cli("api", "tenants", "show", "gamma").field("name") == "Gamma"
    assert cli("--json", "api", "tenants", "suspend", "gamma").json["status"] == "suspended"
    assert cli("api", "tenants", "activate", "gamma").field("status") == "active"
    _failed(cli("api", "tenants", "create", "gamma", check=False), "already exists")


def test_eab_keys_and_a_retried_create(cli, admin_of):
    admin = admin_of("alpha")
    first = cli("api", "eab", "create", "alpha", "--label", "fleet", "--idempotency-key", "k-1",
                token=admin)  # fmt: skip
    kid, hmac_key = first.field("kid"), first.field("hmac_key")
    remember(hmac_key)
    assert "(the HMAC key is shown only now: it will not be shown again)" in first.out
    retried = cli("--json", "api", "eab", "create", "alpha", "--label", "fleet",
                  "--idempotency-key", "k-1", token=admin).json  # fmt: skip
    assert retried["kid"] == kid  # replayed, not a second key
    listed = cli("--json", "api", "eab", "list", "alpha", "--all").json["items"]
    assert [k["label"] for k in listed if k["kid"] == kid] == ["fleet"]
    assert hmac_key not in cli("api", "eab", "list", "alpha", "--all").out
    assert cli("--json", "api", "eab", "revoke", "alpha", kid, token=admin).json["status"] == (
        "revoked"
    )
    _failed(cli("api", "eab", "revoke", "alpha", kid, token=admin, check=False), "revoked")


def test_tokens_and_all_pages(cli):
    ids = []
    for i in range(3):
        created = cli("--json", "api", "tokens", "create", "--tenant", "beta", "--principal",
                      f"bot{i}", "--role", "requester")  # fmt: skip
        ids.append(created.json["id"])
    first = cli("api", "tokens", "list", "--tenant", "beta", "--limit", "1").out.splitlines()
    assert first[0].split()[:3] == ["ID", "PRINCIPAL", "ROLES"]
    assert len(first) == 3 and first[2].startswith("(more: --cursor ")
    every = cli("--json", "api", "tokens", "list", "--tenant", "beta", "--limit", "1", "--all")
    assert [t["id"] for t in every.json["items"]] == sorted(ids)
    assert every.json["next_cursor"] is None
    human = cli("api", "tokens", "list", "--tenant", "beta", "--limit", "1", "--all").out
    assert "more:" not in human and all(i in human for i in ids)

    revoked = cli("--json", "api", "tokens", "revoke", "--tenant", "beta", ids[0]).json
    assert revoked["revoked_at"] is not None
    _failed(cli("api", "tokens", "revoke", ids[0], check=False), "token not found")
    platform = cli("api", "tokens", "create", "--principal", "help", "--role", "support")
    remember(platform.field("token"))
    assert "help" in cli("api", "tokens", "list", "--all").out


def test_policy_push_from_yaml_and_json(cli, admin_of, tmp_path):
    admin = admin_of("beta")
    yaml_file, json_file = tmp_path / "policy.yaml", tmp_path / "policy.json"
    yaml_file.write_text(MINIMAL_YAML)
    json_file.write_text(json.dumps(MINIMAL))
    checked = cli("--json", "api", "policy", "validate", "beta", str(yaml_file)).json
    assert checked["valid"] is True and checked["document"]["identifiers"]["wildcards"] is False
    from_yaml = cli("--json", "api", "policy", "push", "beta", str(yaml_file), token=admin).json
    assert from_yaml["status"] == "draft" and from_yaml["source"] == MINIMAL_YAML
    commented = cli("--json", "api", "policy", "push", "beta", str(yaml_file), "--comment", "why",
                    token=admin)  # fmt: skip
    assert commented.json["comment"] == "why" and commented.json["source"] == MINIMAL_YAML
    from_json = cli("--json", "api", "policy", "push", "beta", str(json_file), "--comment", "j",
                    token=admin)  # fmt: skip
    assert from_json.json["document"] == from_yaml["document"]
    v1, v3 = str(from_yaml["version"]), str(from_json.json["version"])

    listing = cli("api", "policy", "list", "beta").out.splitlines()
    assert listing[0].split()[:2] == ["VERSION", "STATUS"] and len(listing) == 4
    shown = cli("api", "policy", "show", "beta", v1).out
    assert "source:\n  schema: certplane/policy/v1\n" in shown
    diff = cli("--json", "api", "policy", "diff", "beta", v3, "--against", v1).json
    assert (diff["from"], diff["to"], diff["changes"]) == (int(v1), int(v3), [])
    activated = cli("--json", "api", "policy", "activate", "beta", v1, token=admin).json
    assert activated["status"] == "active"
    assert "$schema" in json.dumps(cli("--json", "api", "policy", "schema", token=None).json)


def test_an_invalid_policy_shows_every_pointer(cli, admin_of, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: certplane/policy/v1\nidentifiers:\n  wildcards: maybe\nbogus: 1\n")
    for action in ("validate", "push"):
        result = cli("api", "policy", action, "beta", str(bad), token=admin_of("beta"), check=False)
        _failed(result, "2 problem(s)")
        pointers = re.findall(r"^  at (\S+): ", result.err, re.MULTILINE)
        assert sorted(pointers) == ["/bogus", "/identifiers/wildcards"], result.err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    _failed(cli("api", "policy", "push", "beta", str(broken), check=False), "not valid JSON")


def test_limits(cli):
    shown = cli("--json", "api", "limits", "show", "beta").json
    assert set(shown) == {"tier", "overrides", "usage"}
    name = "certificates-per-tenant"
    changed = cli("--json", "api", "limits", "set", "beta", "--override", f"{name}=100/1d").json
    assert changed["overrides"] == {name: "100/1d"}
    human = cli("api", "limits", "show", "beta").out
    assert "usage:\n  NAME " in human and f"{name}: 100/1d" in human
    back = cli("--json", "api", "limits", "set", "beta", "--override", f"{name}=default").json
    assert back["overrides"] == {}
    _failed(cli("api", "limits", "set", "beta", check=False), "nothing to change")
    _failed(cli("api", "limits", "set", "beta", "--tier", "gold", check=False), "unknown tier")
    _failed(cli("api", "limits", "set", "beta", "--override", "x", check=False), "NAME=RATE")


def test_inventory_approvals_and_events(cli, admin_of, api_platform):
    admin = admin_of("alpha")
    acme = RawClient(api_platform.directory("alpha"))
    assert acme.new_account(eab=api_platform.eab["alpha"]).status_code == 201
    accounts = cli("--json", "api", "accounts", "list", "alpha", "--status", "valid").json
    account = accounts["items"][0]["id"]
    done = cli("api", "accounts", "deactivate", "alpha", account, token=admin)
    assert done.field("status") == "deactivated"
    again = cli("api", "accounts", "deactivate", "alpha", account, token=admin, check=False)
    _failed(again, "account is deactivated")
    events = cli("api", "events", "alpha", "--type", "account.deactivated").out.splitlines()
    assert events[0].split() == ["CREATED_AT", "TYPE", "OBJECT_TYPE", "OBJECT_ID", "ACTOR"]
    assert account in events[1] and "api:admin@alpha" in events[1]

    assert cli("api", "orders", "list", "alpha", "--status", "pending").out == "nothing found\n"
    _failed(cli("api", "orders", "show", "alpha", "nosuch", check=False), "order not found")
    found = cli("--json", "api", "certs", "search", "alpha", "--name", ".example.com",
                "--expires-after", "2020-01-01T00:00:00Z").json  # fmt: skip
    assert found == {"items": [], "next_cursor": None}
    bad_time = cli("api", "certs", "search", "alpha", "--expires-after", "soon", check=False)
    _failed(bad_time, "  at /query/expires_after: ")
    _failed(cli("api", "certs", "show", "alpha", "nosuch", check=False), "certificate not found")
    revoke = cli("api", "certs", "revoke", "alpha", "nosuch", "--reason", "4", token=admin,
                 check=False)  # fmt: skip
    _failed(revoke, "certificate not found")

    assert cli("--json", "api", "approvals", "list", "alpha", "--status", "pending").json == {
        "items": [],
        "next_cursor": None,
    }
    _failed(cli("api", "approvals", "show", "alpha", "x", check=False), "approval not found")
    reject = cli("api", "approvals", "reject", "alpha", "x", "--reason", "no", token=admin,
                 check=False)  # fmt: skip
    _failed(reject, "approval not found")


def test_webhook_secret_is_shown_once(cli, admin_of):
    admin = admin_of("alpha")
    created = cli("api", "webhook", "set", "alpha", "https://hooks.example/certplane", token=admin)
    remember(created.field("secret"))
    assert "(the webhook signing key is shown only now" in created.out


def test_generic_call(cli, admin_of, tmp_path):
    limits = cli("api", "call", "GET", "/tenants/alpha/limits", "--json").json
    assert "usage" in limits
    body = tmp_path / "body.json"
    body.write_text('{"label": "from a file"}')
    created = cli("--json", "api", "call", "post", "tenants/alpha/eab-keys", "--data", f"@{body}",
                  token=admin_of("alpha"))  # fmt: skip
    remember(created.json["hmac_key"])
    assert created.json["label"] == "from a file"
    listed = cli("api", "call", "GET", "/tenants/alpha/eab-keys?limit=200").out
    assert created.json["kid"] in listed
    _failed(cli("api", "call", "GET", "/no/such", check=False), "no such endpoint")
    _failed(cli("api", "call", "POST", "/tenants", "--data", "{", check=False), "not valid JSON")


def test_support_states_a_reason(cli, api_server):
    support = api_server.token("sam", "support")
    _failed(cli("api", "tenants", "show", "alpha", token=support, check=False), "needs a reason")
    shown = cli("api", "--access-reason", "ticket 42", "tenants", "show", "alpha", token=support)
    assert shown.field("slug") == "alpha"


def test_without_a_token_the_error_says_where_to_put_one(cli, tmp_path, api_server):
    _failed(cli("api", "whoami", token=None, check=False), "set CERTPLANE_API_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(api_server.token("tess", "auditor", tenant="beta") + "\n")
    who = cli("api", "whoami", "--token-file", str(token_file), token=None)
    assert who.field("principal") == "tess"
    missing = cli("api", "whoami", "--token-file", str(tmp_path / "nope"), check=False)
    _failed(missing, "cannot read")


def test_problems_exit_1_with_the_detail(cli, api_server):
    result = cli("api", "tenants", "show", "nosuch", check=False)
    assert (result.code, result.out, result.err) == (1, "", "certplane: tenant not found\n")
    auditor = api_server.token("audrey", "auditor", tenant="alpha")
    _failed(cli("api", "eab", "create", "alpha", token=auditor, check=False), "eab:create")


def test_an_unreachable_api_is_a_clear_error(cli):
    url = f"http://127.0.0.1:{free_port()}/api/v1"
    result = cli("api", "eab", "create", "alpha", "--api-url", url, "--idempotency-key", "k-9",
                 check=False)  # fmt: skip
    _failed(result, f"cannot reach the API at {url}")
    assert "--idempotency-key k-9" in result.err


def test_rendering():
    page = {"items": [{"slug": "a", "status": "active"}, {"slug": "bbb", "status": None}]}
    assert render(None, {**page, "next_cursor": None}) == "SLUG  STATUS\na     active\nbbb   -"
    nested = {"id": "x", "identifiers": [{"type": "dns", "value": "a.example"}], "error": {}}
    assert render(None, nested) == "id: x\nidentifiers: a.example\nerror: -"
    assert render(None, {"url": "", "secret": None}) == "url: -\nsecret: -"
    assert render(None, {"usage": [{"name": "n", "rate": "1/1h"}]}) == (
        "usage:\n  NAME  RATE\n  n     1/1h"
    )
