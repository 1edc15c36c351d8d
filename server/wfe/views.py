"""Domain values rendered as ACME wire JSON (RFC 8555 §7.1.2–§7.1.5, RFC 9773 §4.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from certplane.server.model import Account, Authorization, AuthzStatus, Challenge, OrderStatus
from certplane.server.ra.orders import OrderState
from certplane.server.ra.renewal_info import RenewalWindow
from certplane.server.wfe.links import Links


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def account_view(account: Account, links: Links) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": account.status.value,
        "contact": list(account.contact),
        "orders": links.account_orders(account.id),
        "key": account.jwk,
    }
    if account.terms_agreed:
        view["termsOfServiceAgreed"] = True
    return view


def order_view(state: OrderState, links: Links) -> dict[str, Any]:
    order = state.order
    view: dict[str, Any] = {
        "status": state.status.value,
        "expires": rfc3339(order.expires),
        "identifiers": [i.to_json() for i in order.identifiers],
        "authorizations": [links.authz(a) for a in order.authz_ids],
        "finalize": links.finalize(order.id),
    }
    if order.error is not None and state.status is OrderStatus.INVALID:
        view["error"] = order.error
    if state.status is OrderStatus.VALID and order.certificate_id:
        view["certificate"] = links.certificate(order.certificate_id)
    if order.replaces is not None:  # RFC 9773 §5: "it MUST reflect that field"
        view["replaces"] = order.replaces
    return view


def challenge_view(challenge: Challenge, links: Links) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": challenge.type.value,
        "url": links.challenge(challenge.id),
        "status": challenge.status.value,
        "token": challenge.token,
    }
    if challenge.validated_at is not None:
        view["validated"] = rfc3339(challenge.validated_at)
    if challenge.error is not None:
        view["error"] = challenge.error
    return view


def authz_view(authz: Authorization, status: AuthzStatus, links: Links) -> dict[str, Any]:
    view: dict[str, Any] = {
        "identifier": authz.identifier.to_json(),
        "status": status.value,
        "expires": rfc3339(authz.expires),
        "challenges": [challenge_view(c, links) for c in _shown(authz, status)],
    }
    if authz.wildcard:
        view["wildcard"] = True
    return view


def _shown(authz: Authorization, status: AuthzStatus) -> tuple[Challenge, ...]:
    """A valid authorization lists the challenge that proved it (§7.1.4)."""
    if status is AuthzStatus.VALID:
        valid = tuple(c for c in authz.challenges if c.status.value == "valid")
        return valid or authz.challenges
    return authz.challenges


def renewal_info_view(window: RenewalWindow, explanation_url: str) -> dict[str, Any]:
    """A RenewalInfo object (RFC 9773 §4.2); ``explanationURL`` only for a window the server
    moved, and only when one is configured."""
    view: dict[str, Any] = {
        "suggestedWindow": {"start": rfc3339(window.start), "end": rfc3339(window.end)}
    }
    if window.moved and explanation_url:
        view["explanationURL"] = explanation_url
    return view
