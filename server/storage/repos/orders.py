"""Orders, authorizations and challenges of one tenant (RFC 8555 §7.1.3–§7.1.5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_

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
)
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo
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
    )


def _challenge(row: Mapping[str, Any]) -> Challenge:
    return Challenge(
        id=row["id"],
        authz_id=row["authz_id"],
        type=ChallengeType(row["type"]),
        token=row["token"],
        status=ChallengeStatus(row["status"]),
        validated_at=row["validated_at"],
        error=row["error"],
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


class OrderRepo(ScopedRepo):
    table = t.orders

    async def get(self, order_id: str) -> Order | None:
        row = await self._one(self._select().where(t.orders.c.id == order_id))
        if row is None:
            return None
        return _order(row, await self._authz_ids(order_id))

    async def _authz_ids(self, order_id: str) -> tuple[str, ...]:
        link = t.order_authorizations
        stmt = self._select(link).where(link.c.order_id == order_id).order_by(link.c.position)
        return tuple(row["authz_id"] for row in await self._all(stmt))

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
    ) -> str:
        order_id = new_id()
        await self._insert(
            id=order_id,
            account_id=account_id,
            status=OrderStatus.PENDING.value,
            identifiers=[i.to_json() for i in identifiers],
            profile=profile,
            expires=expires,
            not_before=not_before,
            not_after=not_after,
            created_at=now,
        )
        for position, authz_id in enumerate(authz_ids):
            await self._insert(
                t.order_authorizations, order_id=order_id, authz_id=authz_id, position=position
            )
        return order_id

    async def csr(self, order_id: str) -> bytes | None:
        row = await self._one(self._select().where(t.orders.c.id == order_id))
        return None if row is None else row["csr_der"]

    async def transition(
        self, order_id: str, frm: Sequence[OrderStatus], to: OrderStatus, **values: Any
    ) -> bool:
        """Compare-and-set the stored status; False when another request moved it first."""
        stmt = (
            self._update()
            .where(t.orders.c.id == order_id, t.orders.c.status.in_([s.value for s in frm]))
            .values(status=to.value, **values)
        )
        return await self._write(stmt) == 1

    async def page_for_account(
        self, account_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[str, datetime]]:
        """Order ids of an account, oldest first, keyset-paginated by (created_at, id)."""
        stmt = self._select().where(t.orders.c.account_id == account_id)
        if after is not None:
            created, oid = after
            stmt = stmt.where(
                or_(
                    t.orders.c.created_at > created,
                    (t.orders.c.created_at == created) & (t.orders.c.id > oid),
                )
            )
        stmt = stmt.order_by(t.orders.c.created_at, t.orders.c.id).limit(limit)
        return [(row["id"], row["created_at"]) for row in await self._all(stmt)]


class AuthzRepo(ScopedRepo):
    table = t.authorizations

    async def get(self, authz_id: str) -> Authorization | None:
        row = await self._one(self._select().where(t.authorizations.c.id == authz_id))
        if row is None:
            return None
        return _authz(row, await self._challenges(authz_id))

    async def get_many(self, authz_ids: Sequence[str]) -> list[Authorization]:
        stmt = self._select().where(t.authorizations.c.id.in_(list(authz_ids)))
        rows = {row["id"]: row for row in await self._all(stmt)}
        chall_stmt = self._select(t.challenges).where(t.challenges.c.authz_id.in_(list(authz_ids)))
        by_authz: dict[str, list[Challenge]] = {}
        for crow in await self._all(chall_stmt.order_by(t.challenges.c.type)):
            by_authz.setdefault(crow["authz_id"], []).append(_challenge(crow))
        return [_authz(rows[i], tuple(by_authz.get(i, ()))) for i in authz_ids if i in rows]

    async def get_challenge(self, challenge_id: str) -> Challenge | None:
        row = await self._one(self._select(t.challenges).where(t.challenges.c.id == challenge_id))
        return None if row is None else _challenge(row)

    async def _challenges(self, authz_id: str) -> tuple[Challenge, ...]:
        stmt = (
            self._select(t.challenges)
            .where(t.challenges.c.authz_id == authz_id)
            .order_by(t.challenges.c.type)
        )
        return tuple(_challenge(row) for row in await self._all(stmt))

    async def find_reusable(
        self, account_id: str, identifier: Identifier, wildcard: bool, now: datetime
    ) -> str | None:
        """A pending or valid, unexpired authorization of this account for this identifier."""
        a = t.authorizations
        stmt = (
            self._select()
            .where(
                a.c.account_id == account_id,
                a.c.identifier_type == identifier.type.value,
                a.c.identifier_value == identifier.base_domain,
                a.c.wildcard == wildcard,
                a.c.status.in_([AuthzStatus.VALID.value, AuthzStatus.PENDING.value]),
                a.c.expires > now,
            )
            .order_by(a.c.status.desc(), a.c.expires.desc())
            .limit(1)
        )
        row = await self._one(stmt)
        return None if row is None else str(row["id"])

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
        for ctype in challenge_types:
            await self._insert(
                t.challenges,
                id=new_id(),
                authz_id=authz_id,
                type=ctype.value,
                token=token,
                status=ChallengeStatus.PENDING.value,
            )
        return authz_id

    async def transition(
        self, authz_id: str, frm: Sequence[AuthzStatus], to: AuthzStatus, **values: Any
    ) -> bool:
        a = t.authorizations
        stmt = (
            self._update()
            .where(a.c.id == authz_id, a.c.status.in_([s.value for s in frm]))
            .values(status=to.value, **values)
        )
        return await self._write(stmt) == 1

    async def transition_challenge(
        self, challenge_id: str, frm: Sequence[ChallengeStatus], to: ChallengeStatus, **values: Any
    ) -> bool:
        c = t.challenges
        stmt = (
            self._update(c)
            .where(c.c.id == challenge_id, c.c.status.in_([s.value for s in frm]))
            .values(status=to.value, **values)
        )
        return await self._write(stmt) == 1

    async def valid_for_account(
        self, account_id: str, identifiers: Sequence[Identifier], now: datetime
    ) -> set[Identifier]:
        """Which of ``identifiers`` this account holds valid, unexpired authorizations for."""
        a = t.authorizations
        stmt = self._select().where(
            a.c.account_id == account_id,
            a.c.status == AuthzStatus.VALID.value,
            a.c.expires > now,
            a.c.identifier_value.in_([i.base_domain for i in identifiers]),
        )
        held = {(r["identifier_type"], r["identifier_value"]) for r in await self._all(stmt)}
        return {i for i in identifiers if (i.type.value, i.base_domain) in held}
