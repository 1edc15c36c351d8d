"""The tenant scope every request-path repository is built from (ARCHITECTURE.md §4)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class TenantScope:
    """The one tenant a unit of work may touch; immutable id plus its immutable slug."""

    tenant_id: str
    slug: str


def new_id() -> str:
    """A random 128-bit id, base64url without padding (22 characters).

    Never starting with "-": ids are typed on command lines (``certplane ca rotate t ID``),
    where a leading dash reads as an option. Redrawing those costs under 2 % of the id space.
    """
    while True:
        raw = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")
        if not raw.startswith("-"):
            return raw
