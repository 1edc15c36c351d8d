"""newAccount, account update and deactivation, keyChange, orders list (RFC 8555 §7.3)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from certplane.policy.keys import WeakKeyError, check_account_key
from certplane.server.errors import AcmeProblem, ProblemType, malformed, not_found
from certplane.server.ra.accounts import EabClaim, NewAccountRequest
from certplane.server.ra.contacts import parse_contacts
from certplane.server.wfe.client_address import FORWARDED_FOR
from certplane.server.wfe.context import services, tenant_context
from certplane.server.wfe.handlers.common import acme_json
from certplane.server.wfe.jose import (
    ParsedJws,
    check_algorithm,
    jwk_thumbprint,
    jwk_to_public_key,
    key_thumbprint,
    parse_eab,
    parse_flattened,
    public_key_to_jwk,
    verify_jws,
)
from certplane.server.wfe.jws import KeyMode, acme_post
from certplane.server.wfe.views import account_view

_KEY_CHANGE_MEMBERS = {"account", "oldKey"}


async def new_account(request: web.Request) -> web.Response:
    async with acme_post(request, KeyMode.JWK) as post:
        ctx, svc = tenant_context(request), services(request)
        payload = post.payload
        jwk = public_key_to_jwk(post.key)
        _check_account_key(post.key)
        req = NewAccountRequest(
            jwk=jwk,
            thumbprint=jwk_thumbprint(jwk),
            contact=parse_contacts(payload.get("contact")),
            terms_agreed=_optional_bool(payload, "termsOfServiceAgreed"),
            only_return_existing=_optional_bool(payload, "onlyReturnExisting"),
            eab=_eab_claim(payload, post.url, post.jws.jwk or jwk),
            client_ip=svc.trusted_proxies.client_address(
                request.remote, request.headers.getall(FORWARDED_FOR, [])
            ),
        )
        account, created = await svc.accounts.new_account(post.tx, ctx.tenant, req)
        return acme_json(
            account_view(account, ctx.links),
            status=201 if created else 200,
            location=ctx.links.account(account.id),
        )


def _check_account_key(key: Any) -> None:
    try:
        check_account_key(key)
    except WeakKeyError as exc:
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, exc.detail) from None


def _optional_bool(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise malformed(f"{name} must be a boolean")
    return value


def _eab_claim(payload: dict[str, Any], url: str, outer_jwk: dict[str, Any]) -> EabClaim | None:
    raw = payload.get("externalAccountBinding")
    if raw is None:
        return None
    parsed = parse_eab(raw, outer_url=url, outer_jwk=outer_jwk)
    return EabClaim(parsed.kid, parsed.alg, parsed.signing_input, parsed.mac)


async def account(request: web.Request) -> web.Response:
    """POST-as-GET fetches; a payload updates contacts or deactivates (§7.3.2, §7.3.6)."""
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        current = post.require_account()
        if request.match_info["account_id"] != current.id:
            raise not_found("account")
        if not post.is_post_as_get:
            current = await svc.accounts.update_account(post.tx, current, post.payload)
        return acme_json(account_view(current, ctx.links), location=ctx.links.account(current.id))


async def account_orders(request: web.Request) -> web.Response:
    """The account's orders, paginated with ``Link: rel="next"`` (§7.1.2.1)."""
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        current = post.require_account()
        if request.match_info["account_id"] != current.id:
            raise not_found("orders list")
        cursor = request.query.get("cursor")
        ids, next_cursor = await svc.orders.list_orders(
            post.tx, current, cursor, svc.config.acme.orders_page_size
        )
        links: tuple[str, ...] = ()
        if next_cursor is not None:
            links = (f'<{ctx.links.account_orders(current.id, next_cursor)}>;rel="next"',)
        return acme_json({"orders": [ctx.links.order(i) for i in ids]}, links=links)


async def key_change(request: web.Request) -> web.Response:
    """Roll the account key: every check of §7.3.5."""
    async with acme_post(request, KeyMode.KID) as post:
        ctx, svc = tenant_context(request), services(request)
        current = post.require_account()
        inner = _parse_inner(post.payload)
        if inner.url != post.url:
            raise malformed("inner JWS url must equal the outer url")
        new_key = jwk_to_public_key(inner.jwk)
        verify_jws(inner, new_key)
        body = inner.payload_json
        if body is None or set(body) != _KEY_CHANGE_MEMBERS:
            raise malformed("keyChange payload must hold exactly account and oldKey")
        if body["account"] != ctx.links.account(current.id):
            raise malformed("keyChange account does not match the signing account")
        if jwk_thumbprint(body["oldKey"]) != current.jwk_thumbprint:
            raise malformed("keyChange oldKey is not the account's current key")
        _check_account_key(new_key)
        new_jwk = public_key_to_jwk(new_key)
        updated = await svc.accounts.change_key(post.tx, current, new_jwk, key_thumbprint(new_key))
        return acme_json(account_view(updated, ctx.links), location=ctx.links.account(updated.id))


def _parse_inner(payload: dict[str, Any]) -> ParsedJws:
    """The inner JWS of a key change: a ``jwk``, no ``kid``, no ``nonce`` (§7.3.5)."""
    inner = parse_flattened(payload, "inner JWS")
    check_algorithm(inner.alg)
    if inner.jwk is None or "kid" in inner.protected:
        raise malformed("inner JWS must carry the new key as 'jwk' and no 'kid'")
    if "nonce" in inner.protected:
        raise malformed("inner JWS must omit 'nonce'")
    if not isinstance(inner.protected.get("url"), str):
        raise malformed("inner JWS needs a 'url'")
    return inner
