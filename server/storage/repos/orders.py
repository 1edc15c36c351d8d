"""Orders, authorizations and challenges of one tenant (RFC 8555 §7.1.3–§7.1.5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_

from certplane.server.model import (
    Authorization,
    AuthzStatus,
    Challenge,
    ChallengeStatus,
    ChallengeType,
    Identifier,
    IdentifierType,
    Order,
    OrderStatus,
    authz_status,
    order_status,
)
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w
from certplane.server.storage.scope import new_id


def identifiers_from_json(raw: Sequence[Mapping[str, str]]) -> tuple[Identifier, ...]:
    return tuple(Identifier(IdentifierType(i["type"]), i["value"]) for i in raw)


def _order(row: Mapping[str, Any], authz_ids: tuple[str, ...]) -> Order:
    return Order(
        id=row["id"],
        account_id=row["account_id"],
        stored_status=OrderStatus(row["status"]),
        identifiers=identifiers_from_json(row["identifiers"]),
        profile=row["profile"],
        expires=row["expires"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        error=row["error"],
        certificate_id=row["certificate_id"],
        authz_ids=authz_ids,
        created_at=row["created_at"],
        replaces=row["replaces"],
    )


def _challenge(row: Mapping[str, Any], prefix: str = "", authz_id: str | None = None) -> Challenge:
    """A challenge from its own row, or from ``prefix``-ed columns of a joined row."""
    return Challenge(
        id=row[f"{prefix}id"],
        authz_id=row["authz_id"] if authz_id is None else authz_id,
        type=ChallengeType(row[f"{prefix}type"]),
        token=row[f"{prefix}token"],
        status=ChallengeStatus(row[f"{prefix}status"]),
        validated_at=row[f"{prefix}validated_at"],
        error=row[f"{prefix}error"],
    )


def _authz(row: Mapping[str, Any], challenges: tuple[Challenge, ...]) -> Authorization:
    identifier = Identifier(IdentifierType(row["identifier_type"]), row["identifier_value"])
    return Authorization(
        id=row["id"],
        account_id=row["account_id"],
        identifier=identifier,
        wildcard=row["wildcard"],
        stored_status=AuthzStatus(row["status"]),
        expires=row["expires"],
        challenges=challenges,
    )


_o, _oa, _az, _ch = t.orders, t.order_authorizations, t.authorizations, t.challenges

# An order with its authorizations' ids, stored statuses and expiries, in position order.
_ORDER_LOAD = (
    scoped_select(
        _o,
        _o,
        _oa.c.authz_id,
        _az.c.status.label("authz_status"),
        _az.c.expires.label("authz_expires"),
    )
    .select_from(
        _o.outerjoin(
            _oa, (_oa.c.tenant_id == _o.c.tenant_id) & (_oa.c.order_id == _o.c.id)
        ).outerjoin(_az, (_az.c.tenant_id == _oa.c.tenant_id) & (_az.c.id == _oa.c.authz_id))
    )
    .where(_o.c.id == w("id"))
    .order_by(_oa.c.position)
)
_ORDER_CSR = scoped_select(_o, _o.c.csr_der).where(_o.c.id == w("id"))
_ORDER_MOVE = scoped_update(_o).where(_o.c.id == w("id"), _o.c.status.in_(w("from", True)))
_PAGE = scoped_select(_o, _o.c.id, _o.c.created_at).where(_o.c.account_id == w("account_id"))
_PAGE_FIRST = _PAGE.order_by(_o.c.created_at, _o.c.id).limit(w("limit"))
_PAGE_AFTER = (
    _PAGE.where(
        or_(
            _o.c.created_at > w("created"),
            (_o.c.created_at == w("created")) & (_o.c.id > w("order_id")),
        )
    )
    .order_by(_o.c.created_at, _o.c.id)
    .limit(w("limit"))
)


# Orders an approval rule holds are processing too, but nothing is being issued for them.
_HELD = scoped_select(t.approvals, t.approvals.c.object_id).where(
    t.approvals.c.kind == "order", t.approvals.c.status == "pending"
)
_PROCESSING = scoped_select(_o, func.count().label("n")).where(
    _o.c.status == OrderStatus.PROCESSING.value, _o.c.id.not_in(_HELD)
)


@dataclass(frozen=True)
class LoadedOrder:
    """An order, the stored status and expiry of each of its authorizations, and its CSR."""

    order: Order
    authz_states: tuple[tuple[AuthzStatus, datetime], ...]
    csr_der: bytes | None

    def status(self, now: datetime) -> OrderStatus:
        """The order's effective status (RFC 8555 §7.1.6) at ``now``."""
        authzs = [authz_status(stored, expires, now) for stored, expires in self.authz_states]
        return order_status(self.order.stored_status, self.order.expires, authzs, now)


def _loaded(rows: Sequence[Mapping[str, Any]]) -> LoadedOrder:
    linked = [r for r in rows if r["authz_id"] is not None]
    return LoadedOrder(
        order=_order(rows[0], tuple(r["authz_id"] for r in linked)),
        authz_states=tuple((AuthzStatus(r["authz_status"]), r["authz_expires"]) for r in linked),
        csr_der=rows[0]["csr_der"],
    )


class OrderRepo(ScopedRepo):
    table = t.orders

    async def load(self, order_id: str) -> LoadedOrder | None:
        """The order with what its effective status needs, in one statement."""
        rows = await self._all(_ORDER_LOAD, w_id=order_id)
        return _loaded(rows) if rows else None

    async def get(self, order_id: str) -> Order | None:
        loaded = await self.load(order_id)
        return None if loaded is None else loaded.order

    async def create(
        self,
        *,
        account_id: str,
        identifiers: Sequence[Identifier],
        authz_ids: Sequence[str],
        profile: str,
        expires: datetime,
        not_before: datetime | None,
        not_after: datetime | None,
        now: datetime,
        replaces: str | None = None,
    ) -> Order:
        """Insert a pending order linked to ``authz_ids``; returns it as stored."""
        order = Order(
            id=new_id(),
            account_id=account_id,
            stored_status=OrderStatus.PENDING,
            identifiers=tuple(identifiers),
            profile=profile,
            expires=expires,
            not_before=not_before,
            not_after=not_after,
            error=None,
            certificate_id=None,
            authz_ids=tuple(authz_ids),
            created_at=now,
            replaces=replaces,
        )
        await self._insert(
            id=order.id,
            account_id=account_id,
            status=order.stored_status.value,
            identifiers=[i.to_json() for i in identifiers],
            profile=profile,
            expires=expires,
            not_before=not_before,
            not_after=not_after,
            created_at=now,
            replaces=replaces,
        )
        links = [
            {"order_id": order.id, "authz_id": authz_id, "position": position}
            for position, authz_id in enumerate(authz_ids)
        ]
        await self._insert_many(t.order_authorizations, links)
        return order

    async def csr(self, order_id: str) -> bytes | None:
        row = await self._one(_ORDER_CSR, w_id=order_id)
        return None if row is None else row["csr_der"]

    async def transition(
        self, order_id: str, frm: Sequence[OrderStatus], to: OrderStatus, **values: Any
    ) -> bool:
        """Compare-and-set the stored status; False when another request moved it first."""
        moved = await self._write(
            _ORDER_MOVE, w_id=order_id, w_from=[s.value for s in frm], status=to.value, **values
        )
        return moved == 1

    async def count_processing(self) -> int:
        """How many orders of the tenant are being issued (stored status ``processing``)."""
        row = await self._one(_PROCESSING)
        return int(row["n"])

    async def page_for_account(
        self, account_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[str, datetime]]:
        """Order ids of an account, oldest first, keyset-paginated by (created_at, id)."""
        if after is None:
            rows = await self._all(_PAGE_FIRST, w_account_id=account_id, w_limit=limit)
        else:
            created, oid = after
            rows = await self._all(
                _PAGE_AFTER,
                w_account_id=account_id,
                w_created=created,
                w_order_id=oid,
                w_limit=limit,
            )
        return [(row["id"], row["created_at"]) for row in rows]


_CHALLENGE_COLUMNS = (
    _ch.c.id.label("c_id"),
    _ch.c.type.label("c_type"),
    _ch.c.token.label("c_token"),
    _ch.c.status.label("c_status"),
    _ch.c.validated_at.label("c_validated_at"),
    _ch.c.error.label("c_error"),
)
_WITH_CHALLENGES = _az.outerjoin(
    _ch, (_ch.c.tenant_id == _az.c.tenant_id) & (_ch.c.authz_id == _az.c.id)
)
# Authorizations with their challenges (one row per challenge), by authorization id.
_AUTHZS = (
    scoped_select(_az, _az, *_CHALLENGE_COLUMNS)
    .select_from(_WITH_CHALLENGES)
    .where(_az.c.id.in_(w("ids", True)))
    .order_by(_az.c.id, _ch.c.type)
)
# The authorization that owns a challenge, with all of its challenges.
_owned = _ch.alias("owned")
_AUTHZ_BY_CHALLENGE = (
    scoped_select(_owned, _az, *_CHALLENGE_COLUMNS)
    .select_from(
        _owned.join(
            _az, (_az.c.tenant_id == _owned.c.tenant_id) & (_az.c.id == _owned.c.authz_id)
        ).outerjoin(_ch, (_ch.c.tenant_id == _az.c.tenant_id) & (_ch.c.authz_id == _az.c.id))
    )
    .where(_owned.c.id == w("id"))
    .order_by(_ch.c.type)
)
_CHALLENGE = scoped_select(_ch).where(_ch.c.id == w("id"))
_REUSABLE = (
    scoped_select(_az, _az.c.id, _az.c.expires)
    .where(
        _az.c.account_id == w("account_id"),
        _az.c.identifier_type == w("type"),
        _az.c.identifier_value == w("value"),
        _az.c.wildcard == w("wildcard"),
        _az.c.status.in_([AuthzStatus.VALID.value, AuthzStatus.PENDING.value]),
        _az.c.expires > w("now"),
    )
    .order_by(_az.c.status.desc(), _az.c.expires.desc())
    .limit(1)
)
_AUTHZ_MOVE = scoped_update(_az).where(_az.c.id == w("id"), _az.c.status.in_(w("from", True)))
_CHALLENGE_MOVE = scoped_update(_ch).where(_ch.c.id == w("id"), _ch.c.status.in_(w("from", True)))
_VALID_FOR_ACCOUNT = scoped_select(_az, _az.c.identifier_type, _az.c.identifier_value).where(
    _az.c.account_id == w("account_id"),
    _az.c.status == AuthzStatus.VALID.value,
    _az.c.expires > w("now"),
    _az.c.identifier_value.in_(w("values", True)),
)

# How many pending, unexpired authorizations an account holds, and when the oldest expires.
_PENDING_OF_ACCOUNT = scoped_select(
    _az, func.count().label("n"), func.min(_az.c.expires).label("oldest")
).where(
    _az.c.account_id == w("account_id"),
    _az.c.status == AuthzStatus.PENDING.value,
    _az.c.expires > w("now"),
)


def _challenge_of(row: Mapping[str, Any]) -> Challenge:
    """The challenge columns (``c_…``) of a joined authorization row."""
    return _challenge(row, "c_", authz_id=row["id"])


def _authzs_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, Authorization]:
    """Group joined rows (one per challenge) into authorizations, by id."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["id"], []).append(row)
    return {
        authz_id: _authz(group[0], tuple(_challenge_of(r) for r in group if r["c_id"] is not None))
        for authz_id, group in grouped.items()
    }


class AuthzRepo(ScopedRepo):
    table = t.authorizations

    async def get(self, authz_id: str) -> Authorization | None:
        return (await self._many([authz_id])).get(authz_id)

    async def get_many(self, authz_ids: Sequence[str]) -> list[Authorization]:
        found = await self._many(authz_ids)
        return [found[i] for i in authz_ids if i in found]

    async def _many(self, authz_ids: Sequence[str]) -> dict[str, Authorization]:
        return _authzs_of(await self._all(_AUTHZS, w_ids=list(authz_ids)))

    async def get_by_challenge(self, challenge_id: str) -> Authorization | None:
        """The authorization that owns ``challenge_id``, with all its challenges."""
        rows = await self._all(_AUTHZ_BY_CHALLENGE, w_id=challenge_id)
        return next(iter(_authzs_of(rows).values()), None)

    async def get_challenge(self, challenge_id: str) -> Challenge | None:
        row = await self._one(_CHALLENGE, w_id=challenge_id)
        return None if row is None else _challenge(row)

    async def find_reusable(
        self, account_id: str, identifier: Identifier, wildcard: bool, now: datetime
    ) -> tuple[str, datetime] | None:
        """Id and expiry of a pending or valid, unexpired authorization of this account."""
        row = await self._one(
            _REUSABLE,
            w_account_id=account_id,
            w_type=identifier.type.value,
            w_value=identifier.base_domain,
            w_wildcard=wildcard,
            w_now=now,
        )
        return None if row is None else (str(row["id"]), row["expires"])

    async def create(
        self,
        *,
        account_id: str,
        identifier: Identifier,
        challenge_types: Sequence[ChallengeType],
        token: str,
        expires: datetime,
        now: datetime,
    ) -> str:
        authz_id = new_id()
        await self._insert(
            id=authz_id,
            account_id=account_id,
            identifier_type=identifier.type.value,
            identifier_value=identifier.base_domain,
            wildcard=identifier.is_wildcard,
            status=AuthzStatus.PENDING.value,
            expires=expires,
            created_at=now,
        )
        pending = ChallengeStatus.PENDING.value
        challenges = [
            {"id": new_id(), "authz_id": authz_id, "type": c.value, "token": token}
            | {"status": pending}
            for c in challenge_types
        ]
        await self._insert_many(t.challenges, challenges)
        return authz_id

    async def transition(
        self, authz_id: str, frm: Sequence[AuthzStatus], to: AuthzStatus, **values: Any
    ) -> bool:
        moved = await self._write(
            _AUTHZ_MOVE, w_id=authz_id, w_from=[s.value for s in frm], status=to.value, **values
        )
        return moved == 1

    async def transition_challenge(
        self, challenge_id: str, frm: Sequence[ChallengeStatus], to: ChallengeStatus, **values: Any
    ) -> bool:
        moved = await self._write(
            _CHALLENGE_MOVE,
            w_id=challenge_id,
            w_from=[s.value for s in frm],
            status=to.value,
            **values,
        )
        return moved == 1

    async def pending_for_account(
        self, account_id: str, now: datetime
    ) -> tuple[int, datetime | None]:
        """How many pending, unexpired authorizations the account holds, and the earliest
        expiry among them (None when there are none)."""
        row = await self._one(_PENDING_OF_ACCOUNT, w_account_id=account_id, w_now=now)
        return int(row["n"]), row["oldest"]

    async def valid_for_account(
        self, account_id: str, identifiers: Sequence[Identifier], now: datetime
    ) -> set[Identifier]:
        """Which of ``identifiers`` this account holds valid, unexpired authorizations for."""
        rows = await self._all(
            _VALID_FOR_ACCOUNT,
            w_account_id=account_id,
            w_now=now,
            w_values=[i.base_domain for i in identifiers],
        )
        held = {(r["identifier_type"], r["identifier_value"]) for r in rows}
        return {i for i in identifiers if (i.type.value, i.base_domain) in held}
