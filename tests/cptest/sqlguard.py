"""A cursor hook that flags any SQL on a tenant table without a ``tenant_id`` predicate.

ARCHITECTURE.md §4.3: defence in depth for tests. The only unscoped statements allowed are
those of ``storage/ops.py`` (job claims, nonce pruning), listed here by shape.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from certplane.server.storage.tables import TENANT_TABLES

_TABLE_REF = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+\"?(\w+)\"?", re.IGNORECASE)
_OPS_ALLOWED = (
    re.compile(r"^DELETE FROM used_nonces WHERE used_nonces\.expires_at <", re.IGNORECASE),
)


class TenantSqlGuard:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked = 0

    def install(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._check)

    def _check(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        tables = {t.lower() for t in _TABLE_REF.findall(statement)} & TENANT_TABLES
        if not tables:
            return
        self.checked += 1
        if "tenant_id" in statement or any(p.search(statement) for p in _OPS_ALLOWED):
            return
        self.violations.append(" ".join(statement.split())[:300])
