"""Order use cases: newOrder, fetch, list (RFC 8555 §7.4, §7.1.2.1)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certplane.policy.document import Name, Policy
from certplane.policy.identifiers import (
    IdentifierRejections,
    NamePolicy,
    Rejection,
    parse_identifiers,
)
from certplane.server.errors import AcmeProblem, ProblemType, Subproblem, malformed, not_found
from certplane.server.model import (
    Account,
    EventType,
    Identifier,
    Order,
    OrderStatus,
    Tenant,
    TenantStatus,
    challenge_types_for,
)
from certplane.server.ra.ari import Replacement, claim_replacement, replacement_of
from certplane.server.ra.deps import RADeps
from certplane.server.ra.limits import charge, check_new_order
from certplane.server.ra.policies import (
    ActivePolicy,
    eab_facts,
    facts_of,
    names_of,
    order_problem,
)
from certplane.server.storage.uow import TenantTx

MAX_IDENTIFIERS = 100


@dataclass(frozen=True)
class OrderState:
    """An order with its effective status (§7.1.6), ready to render."""

    order: Order
    status: OrderStatus


def new_token() -> str:
    """A challenge token: 256 bits from a CSPRNG, base64url (RFC 8555 §8.1, §8.3)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def rejection_problem(rejections: Sequence[Rejection]) -> AcmeProblem:
    """One subproblem per refused identifier (§6.7.1); the top type is the common one."""
    subs = tuple(
        Subproblem(ProblemType(r.kind.value), r.detail, r.identifier_json) for r in rejections
    )
    kinds = {s.type for s in subs}
    top = kinds.pop() if len(kinds) == 1 else ProblemType.REJECTED_IDENTIFIER
    noun = "identifier" if len(subs) == 1 else "identifiers"
    details = "; ".join(s.detail for s in subs[:3])
    return AcmeProblem(top, f"{len(subs)} {noun} refused: {details}", subproblems=subs)


class OrderService:
    def __init__(self, deps: RADeps, name_policy: NamePolicy | None = None) -> None:
        self._deps = deps
        self._name_policy = name_policy or NamePolicy()

    async def new_order(
        self, tx: TenantTx, tenant: Tenant, account: Account, payload: dict[str, Any]
    ) -> OrderState:
        """Create an order, reusing this account's live authorizations (§7.4, §7.1.4).

        An ARI replacement (``replaces``, RFC 9773 §5) claims the certificate it names in the
        same transaction (``alreadyReplaced`` if another live order holds it), is exempt from
        the new-orders-per-account limit, and carries ``replaces`` from then on.
        """
        if tenant.status is not TenantStatus.ACTIVE:
            raise AcmeProblem(ProblemType.UNAUTHORIZED, "this tenant is suspended: no new orders")
        identifiers = self._identifiers(payload)
        _refuse_validity_window(payload)
        active = await self._deps.policies.current(tx)
        profile = _profile(payload, active.policy)
        await self._check_policy(tx, active, account, identifiers, profile)
        limits, now = self._deps.limits.for_tenant(tenant), self._deps.clock.now()
        replacement = await replacement_of(tx, account, payload.get("replaces"), identifiers, now)
        await check_new_order(tx, limits, account.id, identifiers, now)
        if replacement is None:  # an ARI replacement (RFC 9773 §5) is exempt from this one
            await charge(tx, limits.new_orders_per_account, f"account:{account.id}", now)
        order = await self._create(tx, account, identifiers, profile, active.policy, replacement)
        if replacement is not None:
            await claim_replacement(tx, replacement, order.id)
        return OrderState(order, order.stored_status)

    async def _check_policy(
        self,
        tx: TenantTx,
        active: ActivePolicy,
        account: Account,
        identifiers: list[Identifier],
        profile: str,
    ) -> None:
        """The tenant policy's identifier rules: every violation, one subproblem per refused
        identifier (RFC 8555 §6.7.1), naming the rule and the policy version."""
        label, _creator = await eab_facts(tx, account)
        facts = facts_of(account, label, profile)
        policies = self._deps.policies
        violations = await policies.run(
            active, active.policy.check_order, names_of(identifiers), facts
        )
        if violations:
            raise await policies.refuse(
                tx,
                active,
                "newOrder",
                violations,
                order_problem(active, violations),
                object_type="account",
                object_id=account.id,
                actor=f"account:{account.id}",
                now=self._deps.clock.now(),
            )

    def _identifiers(self, payload: dict[str, Any]) -> list[Identifier]:
        if "identifiers" not in payload:
            raise malformed("newOrder requires identifiers")
        try:
            identifiers = parse_identifiers(payload["identifiers"], max_identifiers=MAX_IDENTIFIERS)
        except IdentifierRejections as exc:
            raise rejection_problem(exc.rejections) from None
        rejections = self._name_policy.check(identifiers)
        if rejections:
            raise rejection_problem(rejections)
        return identifiers

    async def _create(
        self,
        tx: TenantTx,
        account: Account,
        identifiers: list[Identifier],
        profile: str,
        policy: Policy,
        replacement: Replacement | None,
    ) -> Order:
        now = self._deps.clock.now()
        replaces = None if replacement is None else replacement.cert_id
        expires = now + self._deps.settings.order_lifetime
        authz_ids = []
        for identifier in identifiers:
            reusable = await tx.authzs.find_reusable(
                account.id, identifier, identifier.is_wildcard, now
            )
            if reusable is None:
                reusable = await self._new_authz(tx, account, identifier, now, policy)
            authz_ids.append(reusable[0])
            expires = min(expires, reusable[1])
        order = await tx.orders.create(
            account_id=account.id,
            identifiers=identifiers,
            authz_ids=authz_ids,
            profile=profile,
            expires=expires,
            not_before=None,
            not_after=None,
            now=now,
            replaces=replaces,
        )
        extra = {} if replaces is None else {"replaces": replaces}
        await tx.events.append(
            EventType.ORDER_CREATED,
            object_type="order",
            object_id=order.id,
            actor=f"account:{account.id}",
            now=now,
            identifiers=[i.to_json() for i in identifiers],
            **extra,
        )
        return order

    async def _new_authz(
        self,
        tx: TenantTx,
        account: Account,
        identifier: Identifier,
        now: datetime,
        policy: Policy,
    ) -> tuple[str, datetime]:
        """A new pending authorization with the challenges the RFCs and the tenant policy
        allow for its identifier (RFC 8555 §7.1.4, §8); returns its id and expiry."""
        expires = now + self._deps.settings.pending_authz_lifetime
        allowed = policy.challenge_types(Name(identifier.type.value, identifier.value))
        authz_id = await tx.authzs.create(
            account_id=account.id,
            identifier=identifier,
            challenge_types=tuple(t for t in challenge_types_for(identifier) if t in allowed),
            token=new_token(),
            expires=expires,
            now=now,
        )
        await tx.events.append(
            EventType.AUTHZ_CREATED,
            object_type="authz",
            object_id=authz_id,
            actor=f"account:{account.id}",
            now=now,
            identifier=identifier.to_json(),
        )
        return authz_id, expires

    async def get_order(self, tx: TenantTx, account: Account, order_id: str) -> OrderState:
        """An order of this account with its effective status; anything else is 404."""
        return await load_order_state(tx, account, order_id, self._deps.clock.now())

    async def list_orders(
        self, tx: TenantTx, account: Account, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """A page of the account's order ids and the cursor of the next page (§7.1.2.1)."""
        after = _decode_cursor(cursor)
        rows = await tx.orders.page_for_account(account.id, after=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return [order_id for order_id, _ in page], next_cursor


async def load_order_state(
    tx: TenantTx, account: Account, order_id: str, now: datetime
) -> OrderState:
    """An order of this account with its effective status (one statement); else 404."""
    loaded = await tx.orders.load(order_id)
    if loaded is None or loaded.order.account_id != account.id:
        raise not_found("order")
    return OrderState(loaded.order, loaded.status(now))


def _refuse_validity_window(payload: dict[str, Any]) -> None:
    """notBefore/notAfter in newOrder are optional for servers (§7.4); certplane refuses them."""
    for name in ("notBefore", "notAfter"):
        if payload.get(name) is not None:
            raise malformed(f"{name} is not supported: validity comes from the tenant profile")


def _profile(payload: dict[str, Any], policy: Policy) -> str:
    """The order's profile (draft-ietf-acme-profiles): one the tenant policy offers."""
    profile = payload.get("profile", "default")
    if not isinstance(profile, str):
        raise malformed("profile must be a string")
    offered = policy.profiles
    if profile not in offered:
        names = ", ".join(sorted(offered))
        raise malformed(f"profile {profile!r} is not offered by this tenant (offered: {names})")
    return profile


def _encode_cursor(item: tuple[str, datetime]) -> str:
    order_id, created = item
    raw = f"{created.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        stamp, _, order_id = raw.partition("|")
        return datetime.fromisoformat(stamp).astimezone(UTC), order_id
    except (ValueError, UnicodeDecodeError):
        raise malformed("invalid orders cursor") from None
