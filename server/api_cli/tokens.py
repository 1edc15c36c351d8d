"""``certplane token create``: a token minted straight in the database (the first
platform-admin, break-glass), without the API.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from certplane.server.admin.auth import NewToken
from certplane.server.admin.bootstrap import UnknownTenant, create_token
from certplane.server.admin.handlers.tokens import token_json
from certplane.server.api_cli.output import render_object
from certplane.server.cli_ops import OutputError
from certplane.server.clock import SystemClock
from certplane.server.config import Config
from certplane.server.storage.db import Database
from certplane.server.storage.migrate import current_revision, head_revision
from certplane.server.storage.uow import UnitOfWork


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
    return render_object(data)


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
