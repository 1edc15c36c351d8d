"""Who really decides: a principal and every principal whose token minted theirs.

Maker-checker would mean little if a tenant-admin could mint a second token under another name
and approve their own change with it. A decision is refused when the maker is the decider or
any principal up the decider's token lineage.
"""

from __future__ import annotations

from certplane.server.admin.endpoints import ApiCall
from certplane.server.ra.approvals import Decider

MAX_DEPTH = 32


async def decider_of(call: ApiCall) -> Decider:
    minted_by: set[str] = set()
    token_id: str | None = call.principal.token_id
    async with call.services.uow.api(write=False) as store:
        for _ in range(MAX_DEPTH):
            record = await store.token(token_id) if token_id else None
            if record is None:
                break
            minted_by.add(f"api:{record.principal}")
            token_id = record.created_by
    return Decider(call.principal.actor, call.principal.roles, frozenset(minted_by))
