"""The ``certplane`` command: serve, db upgrade, ca init, tenant …, eab …, token, api …, demo.

Human-readable output by default, ``--json`` for scripts; errors go to stderr with exit code 1
(2 for usage errors).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from certplane.ca.errors import CAError
from certplane.server import api_cli
from certplane.server.cli_ops import Operations, OutputError
from certplane.server.config import ConfigError, load_config

Command = Callable[[Operations, argparse.Namespace], Coroutine[Any, Any, Any]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certplane", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("CERTPLANE_CONFIG"), help="TOML file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve ACME (and run the job worker)")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="migrate the schema to the latest version")
    _ca_parsers(sub)
    _tenant_parsers(sub)
    _eab_parsers(sub)
    _token_parsers(sub)
    api_cli.add_parsers(sub)
    demo = sub.add_parser("demo", help="set up the demo tenant and serve it")
    demo.add_argument("--no-serve", action="store_true", help="set up and print, do not serve")
    return parser


def _issuer_options(parser: Any, *, patterns: bool, positional: bool = True) -> None:
    if positional:
        parser.add_argument("tenant")
    parser.add_argument("--algorithm", help="ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    parser.add_argument("--hsm-token", metavar="LABEL", help="a PKCS#11 token for the key")
    if patterns:
        parser.add_argument(
            "--dedicated-root",
            action="store_true",
            help="sign with the tenant's own root (created on first use) instead of the platform's",
        )
        parser.add_argument(
            "--permit-dns", action="append", default=[], metavar="DOMAIN",
            help="name constraint: only names under DOMAIN (repeatable)",
        )  # fmt: skip
        parser.add_argument(
            "--permit-ip", action="append", default=[], metavar="NETWORK",
            help="name constraint: only addresses in NETWORK (repeatable)",
        )  # fmt: skip


def _ca_parsers(sub: Any) -> None:
    ca = sub.add_parser("ca", help="certificate authorities").add_subparsers(
        dest="action", required=True
    )
    ca.add_parser("init", help="create the master key (if missing) and the platform root CA")
    ca.add_parser("list", help="a tenant's issuers").add_argument("tenant")
    _issuer_options(ca.add_parser("create", help="add an issuer to a tenant"), patterns=True)
    rotate = ca.add_parser("rotate", help="replace an issuer with a new key and certificate")
    rotate.add_argument("tenant")
    rotate.add_argument("issuer")
    export = ca.add_parser("export-csr", help="a customer-owned CA: key here, CSR out")
    _issuer_options(export, patterns=False)
    export.add_argument("--out", help="write the CSR (PEM) to this file")
    imp = ca.add_parser("import", help="activate a customer-owned CA with its signed certificate")
    imp.add_argument("tenant")
    imp.add_argument("issuer")
    imp.add_argument("--cert", required=True, help="the signed intermediate (PEM)")
    imp.add_argument("--root", required=True, help="the customer's root certificate (PEM)")
    imp.add_argument("--chain", help="certificates between them, if any (PEM)")
    imp.add_argument("--replaces", metavar="ISSUER", help="retire this issuer once active")
    responder = ca.add_parser("ocsp-responder", help="a delegated OCSP responder for an issuer")
    responder.add_argument("tenant")
    responder.add_argument("issuer")
    group = responder.add_mutually_exclusive_group()
    group.add_argument("--days", type=int, default=7, help="certificate lifetime (default 7)")
    group.add_argument("--remove", action="store_true", help="sign with the issuer key again")
    alt = ca.add_parser("add-chain", help="offer another chain above an issuer (cross-sign)")
    alt.add_argument("tenant")
    alt.add_argument("issuer")
    alt.add_argument("--chain", required=True, help="certificates above the issuer (PEM)")


def _tenant_parsers(sub: Any) -> None:
    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    create = tenant.add_parser("create", help="create a tenant with its own issuing CA")
    create.add_argument("slug")
    create.add_argument("--name", help="display name (default: the slug)")
    create.add_argument(
        "--no-eab", action="store_true", help="do not require External Account Binding"
    )
    _issuer_options(create, patterns=True, positional=False)
    tenant.add_parser("list", help="list tenants")
    settings = tenant.add_parser("set", help="change a tenant's settings")
    settings.add_argument("slug")
    on_off = {"choices": ("on", "off"), "default": None}
    settings.add_argument("--aia-ocsp", help="OCSP URL in new leaves", **on_off)
    settings.add_argument("--aia-ca-issuers", help="caIssuers URL in new leaves", **on_off)
    settings.add_argument(
        "--limit", action="append", default=[], metavar="NAME=RATE",
        help="override a rate limit for this tenant: RATE is COUNT/PERIOD, off, or default",
    )  # fmt: skip
    settings.add_argument(
        "--tier", metavar="NAME", help="put the tenant on a [limits.tiers] tier, or 'default'"
    )
    for action in ("show", "suspend", "activate"):
        tenant.add_parser(action, help=f"{action} a tenant").add_argument("slug")


def _eab_parsers(sub: Any) -> None:
    eab = sub.add_parser("eab", help="External Account Binding keys")
    actions = eab.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key (the HMAC key is shown once)")
    create.add_argument("tenant")
    create.add_argument("--label", default="")
    actions.add_parser("list", help="list a tenant's keys").add_argument("tenant")
    revoke = actions.add_parser("revoke", help="revoke an unbound key")
    revoke.add_argument("tenant")
    revoke.add_argument("kid")


def _token_parsers(sub: Any) -> None:
    token = sub.add_parser("token", help="API tokens minted in the database (bootstrap)")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="mint a token directly (the first platform-admin, break-glass)"
    )
    api_cli.add_token_arguments(create)


COMMANDS: dict[tuple[str, str | None], Command] = {
    ("serve", None): lambda ops, a: ops.serve(),
    ("db", "upgrade"): lambda ops, a: ops.db_upgrade(),
    ("ca", "init"): lambda ops, a: ops.ca_init(),
    ("ca", "list"): lambda ops, a: ops.ca_list(a.tenant),
    ("ca", "create"): lambda ops, a: ops.ca_create(a),
    ("ca", "rotate"): lambda ops, a: ops.ca_rotate(a.tenant, a.issuer),
    ("ca", "export-csr"): lambda ops, a: ops.ca_export_csr(a),
    ("ca", "import"): lambda ops, a: ops.ca_import(a),
    ("ca", "add-chain"): lambda ops, a: ops.ca_add_chain(a.tenant, a.issuer, a.chain),
    ("ca", "ocsp-responder"): lambda ops, a: ops.ca_ocsp_responder(
        a.tenant, a.issuer, None if a.remove else a.days
    ),
    ("tenant", "set"): lambda ops, a: ops.tenant_set(
        a.slug, a.aia_ocsp, a.aia_ca_issuers, a.limit, a.tier
    ),
    ("tenant", "create"): lambda ops, a: ops.tenant_create(a),
    ("tenant", "list"): lambda ops, a: ops.tenant_list(),
    ("tenant", "show"): lambda ops, a: ops.tenant_show(a.slug),
    ("tenant", "suspend"): lambda ops, a: ops.tenant_status(a.slug, "suspended"),
    ("tenant", "activate"): lambda ops, a: ops.tenant_status(a.slug, "active"),
    ("eab", "create"): lambda ops, a: ops.eab_create(a.tenant, a.label),
    ("eab", "list"): lambda ops, a: ops.eab_list(a.tenant),
    ("eab", "revoke"): lambda ops, a: ops.eab_revoke(a.tenant, a.kid),
    ("token", "create"): lambda ops, a: api_cli.token_create(ops.config, a, json_output=ops.json),
    ("api", None): lambda ops, a: api_cli.run_api(ops.config, a, json_output=ops.json),
    ("demo", None): lambda ops, a: ops.demo(serve=not a.no_serve),
}
# The command's own variables, not configuration keys (load_config rejects unknown ones).
CLI_ENVIRONMENT = ("CERTPLANE_CONFIG", api_cli.URL_ENV, api_cli.TOKEN_ENV)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        environ = {k: v for k, v in os.environ.items() if k not in CLI_ENVIRONMENT}
        config = load_config(Path(args.config) if args.config else None, environ)
    except ConfigError as exc:
        print(f"certplane: configuration error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if config.log_level.upper() != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ops = Operations(config, json_output=args.json)
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    try:
        result = asyncio.run(command(ops, args))
    except (OutputError, CAError) as exc:
        print(f"certplane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is not None:
        print(json.dumps(result, indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
