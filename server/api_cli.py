"""``certplane api …``: the management API over HTTP; ``certplane token create``: a token
minted straight in the database (the first platform-admin, break-glass).

Each ``certplane api`` command is a row of ``COMMANDS`` naming an operation of the endpoint
table (``certplane.server.admin.endpoints.API``). Its positionals are the endpoint's path
parameters in path order, its ``--kebab-case`` options the endpoint's query parameters and its
help the endpoint's summary, so the command line cannot drift from the API; a row adds only what
the table cannot say: how the request body is built from the command line.

NOTE(api-cli): a new endpoint needs a row in ``COMMANDS`` (the coverage test in
tests/integration/api/test_api_cli.py fails until it has one); a new list may add ``COLUMNS``.

The bearer token comes from ``CERTPLANE_API_TOKEN`` or ``--token-file``, never from the command
line (it would land in shell history and ``ps``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
from sqlalchemy.exc import SQLAlchemyError

from certplane.server.admin import handlers
from certplane.server.admin.auth import NewToken
from certplane.server.admin.bootstrap import UnknownTenant, create_token
from certplane.server.admin.endpoints import API, Endpoint, QueryParam
from certplane.server.admin.handlers.tokens import token_json
from certplane.server.cli_ops import OutputError
from certplane.server.clock import SystemClock
from certplane.server.config import Config
from certplane.server.storage.db import Database
from certplane.server.storage.migrate import current_revision, head_revision
from certplane.server.storage.uow import UnitOfWork

URL_ENV = "CERTPLANE_API_URL"
TOKEN_ENV = "CERTPLANE_API_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
PREFIX = "/api/v1"
TIMEOUT = aiohttp.ClientTimeout(total=60)
JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"
# Fields the API shows once; the human rendering says so.
SECRETS = {"token": "token", "hmac_key": "HMAC key", "secret": "webhook signing key"}


# --- the command table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A request body as sent: JSON, or a policy's YAML text."""

    data: bytes
    content_type: str

    @classmethod
    def of_json(cls, value: Any) -> Payload:
        return cls(json.dumps(value).encode(), JSON_TYPE)


BodyBuilder = Callable[[argparse.Namespace], Payload]


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: what a command adds besides the endpoint's parameters."""

    names: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


@dataclass(frozen=True)
class ApiCommand:
    """``certplane api <words…>``: one operation (or two: ``tenant_variant`` is the
    operation used when ``--tenant SLUG`` is given, e.g. tenant tokens beside platform ones)."""

    words: tuple[str, ...]
    operation_id: str
    arguments: tuple[Arg, ...] = ()
    body: BodyBuilder | None = None
    tenant_variant: str | None = None

    @property
    def operation_ids(self) -> tuple[str, ...]:
        variant = (self.tenant_variant,) if self.tenant_variant else ()
        return (self.operation_id, *variant)


def _new_tenant(args: argparse.Namespace) -> Payload:
    body: dict[str, Any] = {
        "slug": args.slug,
        "external_account_required": not args.no_eab,
        "dedicated_root": args.dedicated_root,
    }
    optional = {"name": args.name, "algorithm": args.algorithm}
    body.update({k: v for k, v in optional.items() if v is not None})
    body.update({k: getattr(args, k) for k in ("permit_dns", "permit_ip") if getattr(args, k)})
    return Payload.of_json(body)


def _only_given(**values: Any) -> BodyBuilder:
    """A JSON object of the named attributes that were given (``key=attribute``)."""

    def build(args: argparse.Namespace) -> Payload:
        given = {key: getattr(args, name) for key, name in values.items()}
        return Payload.of_json({k: v for k, v in given.items() if v is not None})

    return build


def _policy(args: argparse.Namespace) -> Payload:
    """A policy file: JSON as ``{"document": …}``, YAML as the raw text (with a comment, as
    ``{"source": …}`` since a raw body has no room for one)."""
    text = _read(args.file)
    comment = getattr(args, "comment", None)
    if _is_json_file(args.file, text):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise OutputError(f"{args.file} is not valid JSON: {exc}") from None
        return Payload.of_json(_with_comment({"document": document}, comment))
    if comment is not None:
        return Payload.of_json(_with_comment({"source": text}, comment))
    return Payload(text.encode(), YAML_TYPE)


def _is_json_file(path: str, text: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        return suffix == ".json"
    return text.lstrip().startswith("{")


def _with_comment(body: dict[str, Any], comment: str | None) -> dict[str, Any]:
    return body if comment is None else {**body, "comment": comment}


def _limits(args: argparse.Namespace) -> Payload:
    body: dict[str, Any] = {}
    if args.tier is not None:
        body["tier"] = "" if args.tier == "default" else args.tier
    if args.override:
        body["overrides"] = dict(_override(item) for item in args.override)
    if not body:
        raise OutputError("nothing to change: give --tier and/or --override")
    return Payload.of_json(body)


def _override(item: str) -> tuple[str, str | None]:
    """ "NAME=RATE" -> (name, rate); "off" stays "off", "default" -> None (back to the tier)."""
    name, sep, rate = item.partition("=")
    if not sep or not name or not rate:
        raise OutputError(f"--override expects NAME=RATE, NAME=off or NAME=default, got {item!r}")
    return name, None if rate == "default" else rate


def _new_token(args: argparse.Namespace) -> Payload:
    body = {"principal": args.principal, "roles": args.role, "label": args.label}
    if args.days is not None:
        body["lifetime_days"] = args.days
    return Payload.of_json(body)


TENANT_OPTIONS = (
    arg("slug"),
    arg("--name", help="display name (default: the slug)"),
    arg("--no-eab", action="store_true", help="do not require External Account Binding"),
    arg("--algorithm", help="the issuing CA's key: ec-p256, ec-p384, rsa-2048, …"),
    arg("--dedicated-root", action="store_true", help="the tenant's own root above its CA"),
    arg("--permit-dns", action="append", metavar="DOMAIN", help="name constraint (repeatable)"),
    arg("--permit-ip", action="append", metavar="NETWORK", help="name constraint (repeatable)"),
)
POLICY_FILE = arg("file", metavar="FILE", help="the policy, YAML or JSON (by extension/content)")
TOKEN_OPTIONS = (
    arg("--principal", required=True, help="who the token is for"),
    arg("--role", action="append", required=True, help="a role (repeatable)"),
    arg("--label", default="", help="what the token is for"),
    arg("--days", type=int, help="lifetime in days (default: api.token_lifetime_days)"),
)
TENANT_TOKENS = "a tenant's tokens (without it: platform tokens)"
LIMIT_OPTIONS = (
    arg("--tier", metavar="NAME", help="a [limits.tiers] tier, or 'default'"),
    arg("--override", action="append", metavar="NAME=RATE|off|default", help="repeatable"),
)
WEBHOOK_URL = arg("url", help="where notifications go ('' turns them off)")
REVOKE_REASON = arg(
    "--reason", type=int, default=0, metavar="N",
    help="RFC 5280 reason: 0 unspecified (default), 1 keyCompromise, 3 affiliationChanged, "
    "4 superseded, 5 cessationOfOperation, 9 privilegeWithdrawn",
)  # fmt: skip

COMMANDS: tuple[ApiCommand, ...] = (
    ApiCommand(("whoami",), "whoAmI"),
    ApiCommand(("openapi",), "getOpenApi"),
    ApiCommand(("tenants", "list"), "listTenants"),
    ApiCommand(("tenants", "show"), "getTenant"),
    ApiCommand(("tenants", "create"), "createTenant", TENANT_OPTIONS, _new_tenant),
    ApiCommand(("tenants", "suspend"), "suspendTenant"),
    ApiCommand(("tenants", "activate"), "activateTenant"),
    ApiCommand(("webhook", "set"), "setWebhook", (WEBHOOK_URL,), _only_given(url="url")),
    ApiCommand(("eab", "list"), "listEabKeys"),
    ApiCommand(("eab", "create"), "createEabKey", (arg("--label"),), _only_given(label="label")),
    ApiCommand(("eab", "revoke"), "revokeEabKey"),
    ApiCommand(("policy", "validate"), "validatePolicy", (POLICY_FILE,), _policy),
    ApiCommand(
        ("policy", "push"),
        "createPolicyVersion",
        (POLICY_FILE, arg("--comment", help="why this version")),
        _policy,
    ),
    ApiCommand(("policy", "list"), "listPolicyVersions"),
    ApiCommand(("policy", "show"), "getPolicyVersion"),
    ApiCommand(("policy", "diff"), "diffPolicyVersion"),
    ApiCommand(("policy", "activate"), "activatePolicyVersion"),
    ApiCommand(("policy", "schema"), "getPolicySchema"),
    ApiCommand(("limits", "show"), "getLimits"),
    ApiCommand(("limits", "set"), "setLimits", LIMIT_OPTIONS, _limits),
    ApiCommand(("approvals", "list"), "listApprovals"),
    ApiCommand(("approvals", "show"), "getApproval"),
    ApiCommand(
        ("approvals", "approve"), "approve", (arg("--reason"),), _only_given(reason="reason")
    ),
    ApiCommand(
        ("approvals", "reject"),
        "reject",
        (arg("--reason", required=True),),
        _only_given(reason="reason"),
    ),
    ApiCommand(("accounts", "list"), "listAccounts"),
    ApiCommand(("accounts", "deactivate"), "deactivateAccount"),
    ApiCommand(("orders", "list"), "listOrders"),
    ApiCommand(("orders", "show"), "getOrder"),
    ApiCommand(("certs", "search"), "searchCertificates"),
    ApiCommand(("certs", "show"), "getCertificate"),
    ApiCommand(
        ("certs", "revoke"), "revokeCertificate", (REVOKE_REASON,), _only_given(reason="reason")
    ),
    ApiCommand(("events",), "listEvents"),
    ApiCommand(("tokens", "list"), "listPlatformTokens", tenant_variant="listTenantTokens"),
    ApiCommand(
        ("tokens", "create"),
        "createPlatformToken",
        TOKEN_OPTIONS,
        _new_token,
        tenant_variant="createTenantToken",
    ),
    ApiCommand(("tokens", "revoke"), "revokePlatformToken", tenant_variant="revokeTenantToken"),
)

# The most useful fields of each list, as columns (other lists: their first five fields).
TOKEN_COLUMNS = ("id", "principal", "roles", "label", "expires_at", "revoked_at")
COLUMNS: dict[str, tuple[str, ...]] = {
    "listTenants": ("slug", "status", "tier", "policy_version", "directory"),
    "listEabKeys": ("kid", "status", "label", "account_id", "created_at"),
    "listPolicyVersions": ("version", "status", "created_by", "created_at", "comment"),
    "listApprovals": ("id", "kind", "status", "requested_by", "deadline", "rule"),
    "listAccounts": ("id", "status", "contact", "eab_kid", "created_at"),
    "listOrders": ("id", "status", "identifiers", "account_id", "created_at"),
    "searchCertificates": ("id", "status", "not_after", "serial", "identifiers"),
    "listEvents": ("created_at", "type", "object_type", "object_id", "actor"),
    "listTenantTokens": TOKEN_COLUMNS,
    "listPlatformTokens": TOKEN_COLUMNS,
}
GROUP_HELP = {
    "tenants": "tenants",
    "webhook": "a tenant's approval notifications",
    "eab": "External Account Binding keys",
    "policy": "tenant policies",
    "limits": "a tenant's tier and rate limits",
    "approvals": "the approval queue",
    "accounts": "ACME accounts",
    "orders": "ACME orders",
    "certs": "certificate inventory",
    "tokens": "API tokens",
}


def endpoint_table() -> dict[str, Endpoint]:
    """Every endpoint of the API by operation id."""
    handlers.register()
    return {endpoint.operation_id: endpoint for endpoint in API.endpoints}


def reachable_operations() -> set[str]:
    """The operation ids some ``certplane api`` command calls (``call`` aside)."""
    return {op for command in COMMANDS for op in command.operation_ids}


def path_parameters(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


# --- the parsers --------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """``certplane api …`` under ``sub`` (the top-level subparsers)."""
    api = sub.add_parser(
        "api",
        help="the management API over HTTP (token: $CERTPLANE_API_TOKEN or --token-file)",
        description=f"Calls {PREFIX} at --api-url, ${URL_ENV} or the configured API listener.",
    )
    _connection_options(api)
    groups = api.add_subparsers(dest="api_group", required=True, metavar="COMMAND")
    table = endpoint_table()
    actions: dict[str, Any] = {}
    for command in COMMANDS:
        _add_command(groups, actions, command, table)
    _add_call(groups, table)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """Accepted after ``api`` and after the command; SUPPRESS keeps either from hiding the
    other (a subparser's defaults overwrite its parent's values)."""
    hidden = argparse.SUPPRESS
    parser.add_argument("--api-url", default=hidden, help=f"default: ${URL_ENV} or the config")
    parser.add_argument(
        "--token-file", default=hidden, metavar="PATH", help=f"default: ${TOKEN_ENV}"
    )
    parser.add_argument(
        "--access-reason", default=hidden, metavar="TEXT",
        help="why support accesses the tenant (sent as Certplane-Reason, recorded)",
    )  # fmt: skip
    parser.add_argument(
        "--idempotency-key", default=hidden, metavar="KEY",
        help="for POSTs (default: a new UUID); rerun a failed command with its key to retry it",
    )  # fmt: skip


def _add_command(
    groups: Any, actions: dict[str, Any], command: ApiCommand, table: dict[str, Endpoint]
) -> None:
    endpoint = _endpoint(table, command.operation_id)
    if len(command.words) == 1:
        parser = groups.add_parser(command.words[0], help=endpoint.summary)
    else:
        group, action = command.words
        if group not in actions:
            group_parser = groups.add_parser(group, help=GROUP_HELP.get(group, group))
            actions[group] = group_parser.add_subparsers(dest="api_action", required=True)
        parser = actions[group].add_parser(action, help=endpoint.summary)
    parser.description = endpoint.summary
    _leaf_arguments(parser, command, endpoint)
    parser.set_defaults(api_request=partial(_table_request, command, table))


def _endpoint(table: dict[str, Endpoint], operation_id: str) -> Endpoint:
    try:
        return table[operation_id]
    except KeyError:
        raise LookupError(f"certplane api: no endpoint {operation_id!r} in the API") from None


def _leaf_arguments(parser: Any, command: ApiCommand, endpoint: Endpoint) -> None:
    for name in path_parameters(endpoint.path):
        parser.add_argument(f"path_{name}", metavar=name.upper())
    if command.tenant_variant:
        parser.add_argument("--tenant", dest="path_tenant", metavar="SLUG", help=TENANT_TOKENS)
    for extra in command.arguments:
        parser.add_argument(*extra.names, **extra.options)
    for param in endpoint.query:
        _query_option(parser, param)
    if any(param.name == "cursor" for param in endpoint.query):
        parser.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    _connection_options(parser)
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")


def _query_option(parser: Any, param: QueryParam) -> None:
    schema = param.schema
    options: dict[str, Any] = {
        "dest": f"query_{param.name}",
        "help": param.description,
        "metavar": "TIME" if schema.get("format") == "date-time" else param.name.upper(),
    }
    if schema.get("type") == "integer":
        options.update(type=int, metavar="N")
    if "enum" in schema:
        options.update(choices=schema["enum"], metavar=None)
    parser.add_argument("--" + param.name.replace("_", "-"), **options)


def _add_call(groups: Any, table: dict[str, Endpoint]) -> None:
    call = groups.add_parser("call", help="any endpoint: METHOD PATH (relative to /api/v1)")
    call.add_argument("method", metavar="METHOD")
    call.add_argument("path", metavar="PATH", help="e.g. /tenants/acme/limits?x=y")
    call.add_argument("--data", metavar="JSON|@FILE", help="the JSON body (@- reads stdin)")
    _connection_options(call)
    call.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")
    call.set_defaults(api_request=partial(_call_request, table))


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # relative to the base URL, path parameters quoted
    query: dict[str, str] = field(default_factory=dict)
    payload: Payload | None = None
    operation_id: str | None = None  # None: a ``call`` of a path the table does not know
    public: bool = False  # no token needed

    @property
    def is_post(self) -> bool:
        return self.method == "POST"


def _table_request(
    command: ApiCommand, table: dict[str, Endpoint], args: argparse.Namespace
) -> ApiRequest:
    operation = command.operation_id
    if command.tenant_variant and getattr(args, "path_tenant", None) is not None:
        operation = command.tenant_variant
    endpoint = table[operation]
    values = {name: getattr(args, f"path_{name}") for name in path_parameters(endpoint.path)}
    path = endpoint.path.format_map({k: quote(v, safe="") for k, v in values.items()})
    query = {
        param.name: str(value)
        for param in endpoint.query
        if (value := getattr(args, f"query_{param.name}", None)) is not None
    }
    return ApiRequest(
        endpoint.method,
        path,
        query,
        _payload(command, endpoint, args),
        endpoint.operation_id,
        endpoint.permission is None,
    )


def _payload(command: ApiCommand, endpoint: Endpoint, args: argparse.Namespace) -> Payload | None:
    if command.body is not None:
        return command.body(args)
    return Payload.of_json({}) if endpoint.request is not None else None


def _call_request(table: dict[str, Endpoint], args: argparse.Namespace) -> ApiRequest:
    method = args.method.upper()
    path, _, query = args.path.partition("?")
    path = "/" + path.lstrip("/")
    if path.startswith(PREFIX + "/"):
        path = path[len(PREFIX) :]
    endpoint = _match(table, method, path)
    if args.data is not None:
        payload: Payload | None = Payload(_data(args.data).encode(), JSON_TYPE)
    else:
        payload = Payload.of_json({}) if method in ("POST", "PUT", "PATCH") else None
    return ApiRequest(
        method,
        path,
        dict(parse_qsl(query, keep_blank_values=True)),
        payload,
        endpoint.operation_id if endpoint else None,
        endpoint is not None and endpoint.permission is None,
    )


def _match(table: dict[str, Endpoint], method: str, path: str) -> Endpoint | None:
    """The endpoint a concrete path calls, if the table has one."""
    parts = path.rstrip("/").split("/")
    for endpoint in table.values():
        template = endpoint.path.split("/")
        if endpoint.method == method and len(template) == len(parts):
            pairs = zip(template, parts, strict=True)
            if all(t == p or (t.startswith("{") and p) for t, p in pairs):
                return endpoint
    return None


def _data(value: str) -> str:
    """``--data``: JSON text, ``@FILE`` or ``@-`` (stdin); checked to be JSON before sending."""
    text = value
    if value == "@-":
        text = _stdin()
    elif value.startswith("@"):
        text = _read(value[1:])
    try:
        json.loads(text)
    except ValueError as exc:
        raise OutputError(f"--data is not valid JSON: {exc}") from None
    return text


def _stdin() -> str:
    return sys.stdin.read()


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None


# --- HTTP -------------------------------------------------------------------------------------


class ApiClient:
    """One command's calls: bearer token, Idempotency-Key on POSTs, problems as OutputError."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, headers: Mapping[str, str]
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = dict(headers)

    async def send(self, request: ApiRequest, query: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON answer.

        Raises:
            OutputError: the API answered with a problem, or could not be reached.
        """
        url = self.base_url + request.path
        headers = dict(self.headers)
        if not request.is_post:
            headers.pop("Idempotency-Key", None)
        if request.payload is not None:
            headers["Content-Type"] = request.payload.content_type
        data = request.payload.data if request.payload is not None else None
        try:
            async with self.session.request(
                request.method, url, params=query or request.query, data=data, headers=headers
            ) as response:
                raw = await response.read()
                return _answer(response.status, response.reason or "", raw, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutputError(self._unreachable(request, exc)) from None

    async def every_page(self, request: ApiRequest) -> dict[str, Any]:
        """A list with every item: ``next_cursor`` followed to the end."""
        items: list[Any] = []
        query, seen = dict(request.query), set()
        while True:
            page = await self.send(request, query)
            items += page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return {"items": items, "next_cursor": None}
            if cursor in seen:
                raise OutputError("the API returned the same next_cursor twice")
            seen.add(cursor)
            query["cursor"] = cursor

    def _unreachable(self, request: ApiRequest, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        message = f"cannot reach the API at {self.base_url}: {reason}"
        if request.is_post:
            key = self.headers["Idempotency-Key"]
            message += (
                "\n(the request may have been applied: rerun the command with "
                f"--idempotency-key {key} to retry it safely)"
            )
        return message


def _answer(status: int, reason: str, raw: bytes, url: str) -> Any:
    try:
        body = json.loads(raw) if raw else None
        parsed = True
    except (ValueError, UnicodeDecodeError):
        body, parsed = None, False
    if status >= 400:
        if parsed and isinstance(body, dict) and "detail" in body:
            raise OutputError(problem_text(body))
        raise OutputError(f"HTTP {status} {reason} from {url}")
    if not parsed:
        raise OutputError(f"the answer from {url} is not JSON (HTTP {status})")
    return body


def problem_text(problem: Mapping[str, Any]) -> str:
    """A problem document (RFC 9457) as lines: its detail, then each field's pointer."""
    lines = [str(problem.get("detail") or problem.get("title") or "the API refused the request")]
    for error in problem.get("errors") or ():
        if isinstance(error, dict):
            lines.append(f"  at {error.get('pointer') or '/'}: {error.get('detail', '')}")
    return "\n".join(lines)


def base_url(config: Config, args: argparse.Namespace) -> str:
    """--api-url, else $CERTPLANE_API_URL, else the configured API listener."""
    url = getattr(args, "api_url", None) or os.environ.get(URL_ENV) or _configured_url(config)
    return url.rstrip("/")


def _configured_url(config: Config) -> str:
    if config.api.share_acme_listener:
        return config.server.base_url.rstrip("/") + PREFIX
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    host = wildcard.get(config.api.listen_host, config.api.listen_host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.api.listen_port}{PREFIX}"


def bearer_token(args: argparse.Namespace) -> str:
    """The token from --token-file, else $CERTPLANE_API_TOKEN."""
    path = getattr(args, "token_file", None)
    token = (_read(path) if path else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise OutputError(
            f"no API token: set {TOKEN_ENV} or pass --token-file PATH "
            "(`certplane token create` mints the first one)"
        )
    if not token.isprintable() or any(c.isspace() for c in token):
        raise OutputError("the API token contains spaces or control characters")
    return token


def _headers(args: argparse.Namespace, request: ApiRequest) -> dict[str, str]:
    headers = {
        "Accept": f"{JSON_TYPE}, application/problem+json",
        "User-Agent": "certplane-cli",
        "Idempotency-Key": getattr(args, "idempotency_key", None) or str(uuid.uuid4()),
    }
    if not request.public or getattr(args, "token_file", None) or os.environ.get(TOKEN_ENV):
        headers["Authorization"] = f"Bearer {bearer_token(args)}"
    reason = getattr(args, "access_reason", None)
    if reason:
        headers["Certplane-Reason"] = reason
    return headers


async def run_api(config: Config, args: argparse.Namespace, *, json_output: bool) -> Any:
    """Run one ``certplane api`` command: the JSON body with ``--json``, else text."""
    request: ApiRequest = args.api_request(args)
    headers = _headers(args, request)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        client = ApiClient(session, base_url(config, args), headers)
        if getattr(args, "all", False):
            body = await client.every_page(request)
        else:
            body = await client.send(request)
    paged = not getattr(args, "all", False)
    return body if json_output else render(request.operation_id, body, paged=paged)


# --- human output -----------------------------------------------------------------------------


def render(operation_id: str | None, body: Any, *, paged: bool = True) -> str:
    """A list as aligned columns, an object as ``key: value`` lines (secrets with a note)."""
    if isinstance(body, dict) and isinstance(body.get("items"), list) and "next_cursor" in body:
        text = table(body["items"], COLUMNS.get(operation_id or ""))
        cursor = body["next_cursor"]
        if cursor and paged:
            text += f"\n(more: --cursor {cursor}, or --all for every page)"
        return text
    if isinstance(body, dict):
        return "\n".join([*_fields(body, ""), *_secret_notes(body)])
    return json.dumps(body, indent=2)


def table(items: list[Any], columns: tuple[str, ...] | None = None) -> str:
    if not items:
        return "nothing found"
    if not all(isinstance(item, dict) for item in items):
        return "\n".join(cell(item) for item in items)
    names = columns or tuple(items[0])[:5]
    rows = [[name.upper() for name in names]]
    rows += [[cell(item.get(name)) for name in names] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cell(value: Any) -> str:
    """One value on one line: null (or "") as "-", identifiers by value, lists comma-joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        if not value:
            return "-"
        if set(value) == {"type", "value"}:
            return str(value["value"])
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _fields(body: Mapping[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in body.items():
        if isinstance(value, str) and "\n" in value:
            lines.append(f"{indent}{key}:")
            lines += [f"{indent}  {line}" for line in value.rstrip("\n").splitlines()]
        elif isinstance(value, dict) and value and set(value) != {"type", "value"}:
            lines += [f"{indent}{key}:", *_fields(value, indent + "  ")]
        elif _is_rows(value):
            lines.append(f"{indent}{key}:")
            lines += [f"{indent}  {line}" for line in table(value).splitlines()]
        else:
            lines.append(f"{indent}{key}: {cell(value)}")
    return lines


def _is_rows(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and set(v) != {"type", "value"} for v in value)
    )


def _secret_notes(body: Mapping[str, Any]) -> list[str]:
    return [
        f"(the {label} is shown only now: it will not be shown again)"
        for key, label in SECRETS.items()
        if isinstance(body.get(key), str) and body[key]
    ]


# --- certplane token create -------------------------------------------------------------------


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """``certplane token create``'s options."""
    parser.add_argument("--principal", required=True, help="who the token is for")
    parser.add_argument(
        "--role", action="append", required=True, help="a role (repeatable), e.g. platform-admin"
    )
    parser.add_argument("--tenant", metavar="SLUG", help="a tenant token (tenant roles)")
    parser.add_argument("--days", type=int, help="lifetime (default: api.token_lifetime_days)")
    parser.add_argument("--label", default="", help="what the token is for")


async def token_create(config: Config, args: argparse.Namespace, *, json_output: bool) -> Any:
    """Mint a token in the configured database; the secret is printed this once."""
    try:
        new = await _mint(config, args)
    except UnknownTenant:
        raise OutputError(f"tenant {args.tenant!r} does not exist") from None
    except ValueError as exc:
        raise OutputError(str(exc)) from None
    except OverflowError:
        raise OutputError(f"--days {args.days}: out of range") from None
    except (SQLAlchemyError, OSError) as exc:
        raise OutputError(f"cannot use the database: {exc}") from None
    data = {**token_json(new.record, new.secret), "tenant": args.tenant}
    if json_output:
        return data
    return "\n".join([*_fields(data, ""), *_secret_notes(data)])


async def _mint(config: Config, args: argparse.Namespace) -> NewToken:
    days = config.api.token_lifetime_days if args.days is None else args.days
    db = Database(config.database.url)
    try:
        if await current_revision(db.engine) != head_revision():
            raise OutputError("the database schema is not current: run `certplane db upgrade`")
        return await create_token(
            UnitOfWork(db),
            SystemClock(),
            principal=args.principal,
            roles=args.role,
            tenant_slug=args.tenant,
            label=args.label,
            lifetime=timedelta(days=days),
        )
    finally:
        await db.dispose()
