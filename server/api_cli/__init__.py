"""``certplane api …``: the management API over HTTP; ``certplane token create``: a token
minted straight in the database (the first platform-admin, break-glass).

Each ``certplane api`` command is a row of ``COMMANDS`` naming an operation of the endpoint
table (``certplane.server.admin.endpoints.API``). Its positionals are the endpoint's path
parameters in path order, its ``--kebab-case`` options the endpoint's query parameters and its
help the endpoint's summary, so the command line cannot drift from the API; a row adds only what
the table cannot say: how the request body is built from the command line.

* ``commands``: the command table and the request bodies built from a command line.
* ``parsers``: the argparse tree, and the request each parsed command line stands for.
* ``client``: the HTTP side: base URL, bearer token, calls, problems, :func:`run_api`.
* ``output``: human output (``--json`` prints the answer as it came).
* ``tokens``: ``certplane token create``.

NOTE(api-cli): a new endpoint needs a row in ``commands.COMMANDS`` (the coverage test in
tests/integration/api/test_api_cli.py fails until it has one); a new list may add
``output.COLUMNS``.

The bearer token comes from ``CERTPLANE_API_TOKEN`` or ``--token-file``, never from the command
line (it would land in shell history and ``ps``).
"""

from certplane.server.api_cli.client import (
    PREFIX,
    TIMEOUT,
    TOKEN_ENV,
    URL_ENV,
    ApiClient,
    ApiRequest,
    base_url,
    bearer_token,
    problem_text,
    run_api,
)
from certplane.server.api_cli.commands import (
    COMMANDS,
    GROUP_HELP,
    JSON_TYPE,
    LIMIT_OPTIONS,
    POLICY_FILE,
    REVOKE_REASON,
    TENANT_OPTIONS,
    TENANT_TOKENS,
    TOKEN_OPTIONS,
    WEBHOOK_URL,
    YAML_TYPE,
    ApiCommand,
    Arg,
    BodyBuilder,
    Payload,
    arg,
    endpoint_table,
    path_parameters,
    reachable_operations,
)
from certplane.server.api_cli.output import COLUMNS, SECRETS, TOKEN_COLUMNS, cell, render, table
from certplane.server.api_cli.parsers import add_parsers
from certplane.server.api_cli.tokens import add_token_arguments, token_create

__all__ = [
    "COLUMNS",
    "COMMANDS",
    "GROUP_HELP",
    "JSON_TYPE",
    "LIMIT_OPTIONS",
    "POLICY_FILE",
    "PREFIX",
    "REVOKE_REASON",
    "SECRETS",
    "TENANT_OPTIONS",
    "TENANT_TOKENS",
    "TIMEOUT",
    "TOKEN_COLUMNS",
    "TOKEN_ENV",
    "TOKEN_OPTIONS",
    "URL_ENV",
    "WEBHOOK_URL",
    "YAML_TYPE",
    "ApiClient",
    "ApiCommand",
    "ApiRequest",
    "Arg",
    "BodyBuilder",
    "Payload",
    "add_parsers",
    "add_token_arguments",
    "arg",
    "base_url",
    "bearer_token",
    "cell",
    "endpoint_table",
    "path_parameters",
    "problem_text",
    "reachable_operations",
    "render",
    "run_api",
    "table",
    "token_create",
]
