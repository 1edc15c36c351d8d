"""ACME accounts of one tenant (RFC 8555 §7.1.2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certplane.server.model import Account, AccountStatus
from certplane.server.storage import tables as t
from certplane.server.storage.repos.base import ScopedRepo, scoped_select, scoped_update, w
from certplane.server.storage.scope import new_id


def _account(row: Mapping[str, Any]) -> Account:
    return Account(
        id=row["id"],
        jwk=row["jwk"],
        jwk_thumbprint=row["jwk_thumbprint"],
        status=AccountStatus(row["status"]),
        contact=tuple(row["contact"]),
        terms_agreed=row["terms_agreed"],
        eab_kid=row["eab_kid"],
        created_at=row["created_at"],
    )


_a = t.accounts
_BY_ID = scoped_select(_a).where(_a.c.id == w("id"))
_BY_THUMBPRINT = scoped_select(_a).where(_a.c.jwk_thumbprint == w("thumbprint"))
_UPDATE = scoped_update(_a).where(_a.c.id == w("id"))


class AccountRepo(ScopedRepo):
    table = t.accounts

    async def get(self, account_id: str) -> Account | None:
        row = await self._one(_BY_ID, w_id=account_id)
        return None if row is None else _account(row)

    async def get_by_thumbprint(self, thumbprint: str) -> Account | None:
        row = await self._one(_BY_THUMBPRINT, w_thumbprint=thumbprint)
        return None if row is None else _account(row)

    async def create(
        self,
        *,
        jwk: dict[str, Any],
        thumbprint: str,
        contact: tuple[str, ...],
        terms_agreed: bool,
        eab_kid: str | None,
        now: datetime,
    ) -> Account:
        account_id = new_id()
        await self._insert(
            id=account_id,
            jwk=jwk,
            jwk_thumbprint=thumbprint,
            status=AccountStatus.VALID.value,
            contact=list(contact),
            terms_agreed=terms_agreed,
            eab_kid=eab_kid,
            created_at=now,
        )
        account = await self.get(account_id)
        assert account is not None
        return account

    async def update_contact(self, account_id: str, contact: tuple[str, ...]) -> None:
        await self._write(_UPDATE, w_id=account_id, contact=list(contact))

    async def set_status(self, account_id: str, status: AccountStatus) -> None:
        await self._write(_UPDATE, w_id=account_id, status=status.value)

    async def change_key(self, account_id: str, jwk: dict[str, Any], thumbprint: str) -> None:
        await self._write(_UPDATE, w_id=account_id, jwk=jwk, jwk_thumbprint=thumbprint)
