"""The command table of ``certplane api``: one ``ApiCommand`` row per command, naming an
operation of the endpoint table (``certplane.server.admin.endpoints.API``), and the body
builders for what the table cannot say: how the request body is built from the command line.

NOTE(api-cli): a new endpoint needs a row in ``COMMANDS`` (the coverage test in
tests/integration/api/test_api_cli.py fails until it has one); a new list may add ``COLUMNS`` in
``certplane.server.api_cli.output``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certplane.server.admin import handlers
from certplane.server.admin.endpoints import API, Endpoint
from certplane.server.cli_ops import OutputError

JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"

# --- rows -----------------------------------------------------------------------------------------


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


# --- request bodies from the command line ---------------------------------------------------------


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
    text = read_file(args.file)
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


# --- the table ------------------------------------------------------------------------------------

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
    ApiCommand(("inventory", "list"), "listInventory"),
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
    "inventory": "what the agents found on their hosts",
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


def read_file(path: str) -> str:
    """A file the command line names, as text.

    Raises:
        OutputError: it cannot be read.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
