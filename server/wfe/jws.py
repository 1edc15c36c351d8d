"""Authenticating ACME POSTs (RFC 8555 §6.2–§6.5): Boulder's ladder of small checks.

content type → strict parse → key lookup (kid: tenant-scoped account; jwk: the embedded key)
→ algorithm fits key → signature over the bytes received → nonce redeemed once → ``url`` equals
the canonical URL → account valid. Each step raises its own precise problem.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from certplane.server.errors import AcmeProblem, ProblemType, malformed
from certplane.server.model import Account, AccountStatus
from certplane.server.storage.uow import TenantTx
from certplane.server.wfe.context import Services, TenantContext, services, tenant_context
from certplane.server.wfe.jose import ParsedJws, PublicKey, jwk_to_public_key, parse_jws, verify_jws

JOSE_CONTENT_TYPE = "application/jose+json"


class KeyMode(enum.Enum):
    """How an endpoint authenticates (Pebble's key extractors)."""

    KID = "kid"
    JWK = "jwk"
    EITHER = "either"


@dataclass(frozen=True)
class VerifiedPost:
    """An authenticated request, and the unit of work its use case runs in."""

    jws: ParsedJws
    key: PublicKey
    account: Account | None
    url: str
    tx: TenantTx

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON payload; malformed when the request was a POST-as-GET."""
        if self.jws.payload_json is None:
            raise malformed("this request needs a JSON object payload")
        return self.jws.payload_json

    @property
    def is_post_as_get(self) -> bool:
        return self.jws.payload == b""

    def require_account(self) -> Account:
        assert self.account is not None
        return self.account


@contextlib.asynccontextmanager
async def acme_post(
    request: web.Request, mode: KeyMode, *, max_bytes: int | None = None
) -> AsyncIterator[VerifiedPost]:
    """Authenticate an ACME POST and keep its unit of work open for the use case.

    One transaction per request: the nonce is redeemed in the same transaction as the use
    case's writes. If the use case fails, that transaction rolls back and the nonce is then
    redeemed on its own, so a nonce stays single-use whatever the outcome (§6.5).
    ``max_bytes`` is the endpoint's body limit when it is not ``server.max_body_bytes``.
    """
    svc, ctx = services(request), tenant_context(request)
    _check_content_type(request)
    limit = max_bytes or svc.config.server.max_body_bytes
    jws = parse_jws(await _read_body(request, limit), max_bytes=limit)
    url = ctx.links.path_url(request.path_qs)
    expires = None
    try:
        async with svc.uow.begin(ctx.scope) as tx:
            account, key = await _lookup_key(tx, ctx, jws, mode)
            verify_jws(jws, key)
            expires = await _redeem_nonce(tx, svc, ctx, jws.nonce)
            _check_after_nonce(svc, jws, url, account)
            yield VerifiedPost(jws, key, account, url, tx)
    except BaseException:
        if expires is not None:
            await _redeem_alone(svc, ctx, jws.nonce or "", expires)
        raise


def _check_after_nonce(svc: Services, jws: ParsedJws, url: str, account: Account | None) -> None:
    """The hostile nonce knob, then ``url`` (§6.4), then the account's status (§7.3.6)."""
    if svc.nonce_rejecter.should_reject(jws):
        raise AcmeProblem(ProblemType.BAD_NONCE, "nonce rejected (hostile test setting)")
    if jws.url != url:
        raise AcmeProblem(ProblemType.UNAUTHORIZED, "JWS url does not match the request URL")
    if account is not None and account.status is not AccountStatus.VALID:
        # RFC 8555 §7.3.6: requests from a deactivated account are 401 Unauthorized.
        raise AcmeProblem(ProblemType.UNAUTHORIZED, f"account is {account.status}", status=401)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, read up to ``limit`` bytes (aiohttp answers 413 beyond it), even when that is
    more than the application's ``client_max_size``."""
    if limit > request.client_max_size:
        request = request.clone(client_max_size=limit)
    return await request.read()


def _check_content_type(request: web.Request) -> None:
    if request.content_type != JOSE_CONTENT_TYPE:
        raise AcmeProblem(
            ProblemType.MALFORMED, f"Content-Type must be {JOSE_CONTENT_TYPE}", status=415
        )


async def _lookup_key(
    tx: TenantTx, ctx: TenantContext, jws: ParsedJws, mode: KeyMode
) -> tuple[Account | None, PublicKey]:
    if jws.kid is not None:
        if mode is KeyMode.JWK:
            raise malformed("this request must be signed with a jwk, not a kid")
        account = await _account_for_kid(tx, ctx, jws.kid)
        return account, _account_key(account.jwk)
    if mode is KeyMode.KID:
        raise malformed("this request must be signed with an account kid, not a jwk")
    return None, jwk_to_public_key(jws.jwk)


def _account_key(jwk: dict[str, Any]) -> PublicKey:
    """The public key of a stored account JWK, memoized by the JWK's exact members.

    A pure conversion (no lookup is skipped): the account itself is read on every request.
    """
    try:
        return _key_from_members(tuple(sorted(jwk.items())))
    except TypeError:  # a member that is not hashable: convert without the memo
        return jwk_to_public_key(jwk)


@functools.lru_cache(maxsize=4096)
def _key_from_members(members: tuple[tuple[str, Any], ...]) -> PublicKey:
    return jwk_to_public_key(dict(members))


async def _account_for_kid(tx: TenantTx, ctx: TenantContext, kid: str) -> Account:
    """The kid is this tenant's account URL; anything else does not exist (§6.2)."""
    prefix = ctx.links.account_prefix
    account_id = kid[len(prefix) :] if kid.startswith(prefix) else ""
    account = await tx.accounts.get(account_id) if account_id and "/" not in account_id else None
    if account is None:
        raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account for this kid")
    return account


async def _redeem_nonce(
    tx: TenantTx, svc: Services, ctx: TenantContext, nonce: str | None
) -> datetime:
    """Redeem in ``tx``; the nonce's expiry, or badNonce when forged, expired or used (§6.5)."""
    expires = svc.nonces.check(ctx.scope.tenant_id, nonce or "", svc.clock.now())
    if expires is None or not await tx.nonces.redeem(nonce or "", expires):
        raise AcmeProblem(ProblemType.BAD_NONCE, "JWS has an invalid or used anti-replay nonce")
    return expires


async def _redeem_alone(svc: Services, ctx: TenantContext, nonce: str, expires: datetime) -> None:
    """After the request's transaction rolled back: the nonce is spent all the same."""
    async with svc.uow.begin(ctx.scope) as tx:
        await tx.nonces.redeem(nonce, expires)
