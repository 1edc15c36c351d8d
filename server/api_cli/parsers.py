"""The argparse tree of ``certplane api``, built from the command table and the endpoint
table, and the :class:`~certplane.server.api_cli.client.ApiRequest` each parsed command line
stands for (``args.api_request(args)``): a table command, or ``call METHOD PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, quote

from certplane.server.admin.endpoints import Endpoint, QueryParam
from certplane.server.api_cli.client import PREFIX, TOKEN_ENV, URL_ENV, ApiRequest
from certplane.server.api_cli.commands import (
    COMMANDS,
    GROUP_HELP,
    JSON_TYPE,
    TENANT_TOKENS,
    ApiCommand,
    Payload,
    endpoint_table,
    path_parameters,
    read_file,
)
from certplane.server.cli_ops import OutputError

# --- the parsers ----------------------------------------------------------------------------------


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


# --- the request of a command line ----------------------------------------------------------------


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
        text = read_file(value[1:])
    try:
        json.loads(text)
    except ValueError as exc:
        raise OutputError(f"--data is not valid JSON: {exc}") from None
    return text


def _stdin() -> str:
    return sys.stdin.read()
