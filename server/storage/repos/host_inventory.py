"""The host inventory of one tenant: what its accounts' agents report, one snapshot per
(account, host), and the management API's query over it.

Flags are computed when read, by SQL conditions (``flag_conditions``): the same expressions
filter a page by a flag and render every row's flags, so the two cannot disagree and a page
filtered by a flag is still a keyset page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, or_

from certplane.server.model import WEAK_KEY_BITS, WEAK_SIGNATURE_HASHES, InventoryFlag
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import (
    ScopedRepo,
    scoped_delete,
    scoped_select,
    w,
)
from certplane.server.storage.repos.inventory import like_literal

Cursor = tuple[datetime, str]

_i = t.inventory
_a = t.accounts
# NOTE(serialised-reports): a report locks its account's row first, so two reports of one
# account (PostgreSQL: concurrent requests) replace snapshots one after the other.
_LOCK_ACCOUNT = scoped_select(_a, _a.c.id).where(_a.c.id == w("account_id")).with_for_update()
_SNAPSHOT = scoped_select(_i, _i.c.id, _i.c.fingerprint, _i.c.first_seen).where(
    _i.c.account_id == w("account_id"), _i.c.host == w("host")
)
_DROP_SNAPSHOT = scoped_delete(_i).where(_i.c.account_id == w("account_id"), _i.c.host == w("host"))


@dataclass(frozen=True)
class Seen:
    """A row of the previous snapshot: its id and first sighting survive the next report."""

    id: str
    first_seen: datetime


@dataclass(frozen=True)
class HostInventoryQuery:
    """Filters of the management API's inventory list; ``now`` and ``expiring_days`` define
    the time flags."""

    now: datetime
    soon: datetime  # now + the "expiring" horizon
    host: str | None = None
    name: str | None = None  # an exact SAN, or ".example.com" for every name under it
    flag: InventoryFlag | None = None
    served: bool | None = None
    expires_before: datetime | None = None


def _weak() -> ColumnElement[bool]:
    c = _i.c
    small_key = [
        and_(c.key_type.like(f"{family}-%"), c.key_bits < bits)
        for family, bits in WEAK_KEY_BITS.items()
    ]
    signature = func.lower(func.coalesce(c.signature_algorithm, ""))
    weak_hash = [signature.like(f"%{name}%") for name in WEAK_SIGNATURE_HASHES]
    return or_(*small_key, *weak_hash)


def flag_conditions(now: datetime, soon: datetime) -> dict[InventoryFlag, ColumnElement[bool]]:
    """Each flag as a condition on an inventory row (see ``InventoryFlag``)."""
    c = _i.c
    return {
        InventoryFlag.EXPIRING: and_(c.not_after >= now, c.not_after < soon),
        InventoryFlag.EXPIRED: c.not_after < now,
        InventoryFlag.WEAK: _weak(),
        InventoryFlag.UNKNOWN_ISSUER: c.certificate_id.is_(None),
        InventoryFlag.UNMANAGED: c.managed == false(),
    }


def san_filter(name: str) -> ColumnElement[bool]:
    """Rows whose SANs (a JSON list of strings) hold ``name``, or a name under ``.suffix``."""
    encoded = json.dumps(name)
    fragment = encoded[1:] if name.startswith(".") else encoded  # ".suffix"" ends a value
    return cast(_i.c.sans, String).like(f"%{like_literal(fragment)}%", escape="\\")


def _after(cursor: Cursor | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    stamp, row_id = cursor
    seen, ident = _i.c.first_seen, _i.c.id
    return (seen > stamp) | ((seen == stamp) & (ident > row_id))


class HostInventoryRepo(ScopedRepo):
    table = t.inventory

    async def lock_account(self, account_id: str) -> None:
        """Hold the account's row until the transaction ends (its reports run one by one)."""
        await self._one(_LOCK_ACCOUNT, w_account_id=account_id)

    async def snapshot(self, account_id: str, host: str) -> dict[str, Seen]:
        """The account's current snapshot of ``host``, by fingerprint."""
        rows = await self._all(_SNAPSHOT, w_account_id=account_id, w_host=host)
        return {row["fingerprint"]: Seen(row["id"], row["first_seen"]) for row in rows}

    async def replace(self, account_id: str, host: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """The account's snapshot of ``host`` becomes ``rows`` (Precondition: the account is
        locked, see ``lock_account``)."""
        await self._write(_DROP_SNAPSHOT, w_account_id=account_id, w_host=host)
        await self._insert_many(_i, rows)

    async def page(
        self, query: HostInventoryQuery, *, cursor: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        """A keyset page over ``(first_seen, id)``; each row carries ``flags`` (a list)."""
        flags = flag_conditions(query.now, query.soon)
        labelled = [condition.label(f"flag_{flag.name}") for flag, condition in flags.items()]
        stmt: Select[Any] = scoped_select(_i, _i, *labelled)
        for condition in (*self._filters(query, flags), _after(cursor)):
            if condition is not None:
                stmt = stmt.where(condition)
        stmt = stmt.order_by(_i.c.first_seen, _i.c.id).limit(limit)
        rows = await self._all(stmt)
        return [_with_flags(row) for row in rows]

    @staticmethod
    def _filters(
        query: HostInventoryQuery, flags: Mapping[InventoryFlag, ColumnElement[bool]]
    ) -> list[ColumnElement[bool] | None]:
        c = _i.c
        return [
            None if query.host is None else c.host == query.host,
            None if query.name is None else san_filter(query.name),
            None if query.flag is None else flags[query.flag],
            None if query.served is None else c.served == query.served,
            None if query.expires_before is None else c.not_after < query.expires_before,
        ]


def _with_flags(row: Mapping[str, Any]) -> dict[str, Any]:
    found = dict(row)
    found["flags"] = [flag.value for flag in InventoryFlag if found.pop(f"flag_{flag.name}")]
    return found
