"""ACME accounts, orders and certificates of a tenant: search, deactivate, revoke."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall, QueryParam
from certplane.server.admin.problems import conflict, not_found
from certplane.server.admin.schemas import (
    IDENTIFIER,
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    next_time_cursor,
    obj,
    page_of,
    time_cursor,
)
from certplane.server.model import AccountStatus, EventType
from certplane.server.storage.repos.inventory import CertificateQuery

ACCOUNT: dict[str, Any] = obj(
    ["id", "status", "contact", "eab_kid", "created_at", "jwk_thumbprint"],
    {
        "id": STRING,
        "status": {"enum": [s.value for s in AccountStatus]},
        "contact": {"type": "array", "items": STRING},
        "eab_kid": NULLABLE_STRING,
        "created_at": TIMESTAMP,
        "jwk_thumbprint": STRING,
    },
)


def _account(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "contact": list(row["contact"]),
        "eab_kid": row["eab_kid"],
        "created_at": row["created_at"].isoformat(),
        "jwk_thumbprint": row["jwk_thumbprint"],
    }


def _status_param(values: list[str]) -> QueryParam:
    return QueryParam("status", {"enum": values}, "only this status")


@API.route(
    "GET",
    "/tenants/{tenant}/accounts",
    operation_id="listAccounts",
    permission=Permission.ACCOUNTS_READ,
    summary="ACME accounts of the tenant",
    response=page_of(ACCOUNT),
    query=(_status_param([s.value for s in AccountStatus]), *PAGE_PARAMS),
    tag="inventory",
)
async def list_accounts(call: ApiCall) -> Answer:
    limit = call.query["limit"]
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.inventory.accounts(
            status=call.query.get("status"),
            cursor=time_cursor(call.query.get("cursor")),
            limit=limit + 1,
        )
    page, cursor = next_time_cursor(rows, limit)
    return Answer({"items": [_account(r) for r in page], "next_cursor": cursor})


@API.route(
    "POST",
    "/tenants/{tenant}/accounts/{account}/deactivate",
    operation_id="deactivateAccount",
    permission=Permission.ACCOUNTS_DEACTIVATE,
    summary="Deactivate an ACME account (RFC 8555 §7.3.6): its key authorizes nothing more",
    response=ACCOUNT,
    tag="inventory",
)
async def deactivate_account(call: ApiCall) -> Answer:
    account_id = call.path("account")
    services = call.services
    async with services.uow.begin(call.scope) as tx:
        account = await tx.accounts.get(account_id)
        if account is None:
            raise not_found("account")
        if account.status is not AccountStatus.VALID:
            raise conflict(f"account is {account.status.value}")
        await tx.accounts.set_status(account_id, AccountStatus.DEACTIVATED)
        await tx.events.append(
            EventType.ACCOUNT_DEACTIVATED,
            object_type="account",
            object_id=account_id,
            actor=call.principal.actor,
            now=services.clock.now(),
        )
        row = await tx.inventory.account(account_id)
    assert row is not None
    return Answer(_account(row))


ORDER: dict[str, Any] = obj(
    ["id", "account_id", "status", "identifiers", "profile", "created_at", "expires"],
    {
        "id": STRING,
        "account_id": STRING,
        "status": {"enum": ["pending", "ready", "processing", "valid", "invalid"]},
        "identifiers": {"type": "array", "items": IDENTIFIER},
        "profile": STRING,
        "created_at": TIMESTAMP,
        "expires": TIMESTAMP,
        "certificate_id": NULLABLE_STRING,
        "error": {"type": ["object", "null"]},
    },
)


def _order(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "status": row["status"],
        "identifiers": list(row["identifiers"]),
        "profile": row["profile"],
        "created_at": row["created_at"].isoformat(),
        "expires": row["expires"].isoformat(),
        "certificate_id": row["certificate_id"],
        "error": row["error"],
    }


@API.route(
    "GET",
    "/tenants/{tenant}/orders",
    operation_id="listOrders",
    permission=Permission.ORDERS_READ,
    summary="Orders of the tenant (stored status), oldest first",
    response=page_of(ORDER),
    query=(
        _status_param(["pending", "ready", "processing", "valid", "invalid"]),
        QueryParam("account", {"type": "string", "maxLength": 64}, "only this account's"),
        *PAGE_PARAMS,
    ),
    tag="inventory",
)
async def list_orders(call: ApiCall) -> Answer:
    limit = call.query["limit"]
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.inventory.orders(
            status=call.query.get("status"),
            account_id=call.query.get("account"),
            cursor=time_cursor(call.query.get("cursor")),
            limit=limit + 1,
        )
    page, cursor = next_time_cursor(rows, limit)
    return Answer({"items": [_order(r) for r in page], "next_cursor": cursor})


@API.route(
    "GET",
    "/tenants/{tenant}/orders/{order}",
    operation_id="getOrder",
    permission=Permission.ORDERS_READ,
    summary="One order",
    response=ORDER,
    tag="inventory",
)
async def get_order(call: ApiCall) -> Answer:
    async with call.services.uow.begin(call.scope, write=False) as tx:
        row = await tx.inventory.order(call.path("order"))
    if row is None:
        raise not_found("order")
    return Answer(_order(row))


CERTIFICATE: dict[str, Any] = obj(
    ["id", "serial", "status", "issuer_id", "order_id", "account_id", "identifiers"],
    {
        "id": STRING,
        "serial": STRING,
        "status": {"enum": ["reserved", "issued", "revoked", "abandoned"]},
        "issuer_id": STRING,
        "order_id": STRING,
        "account_id": STRING,
        "identifiers": {"type": "array", "items": IDENTIFIER},
        "not_before": NULLABLE_TIMESTAMP,
        "not_after": NULLABLE_TIMESTAMP,
        "revoked_at": NULLABLE_TIMESTAMP,
        "revocation_reason": {"type": ["integer", "null"]},
        "created_at": TIMESTAMP,
        "certificate_pem": NULLABLE_STRING,
    },
)


def _stamp(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _certificate(row: Mapping[str, Any], *, pem: bool = False) -> dict[str, Any]:
    body = {
        "id": row["id"],
        "serial": row["serial"],
        "status": row["status"],
        "issuer_id": row["issuer_id"],
        "order_id": row["order_id"],
        "account_id": row["account_id"],
        "identifiers": list(row["identifiers"]),
        "not_before": _stamp(row["not_before"]),
        "not_after": _stamp(row["not_after"]),
        "revoked_at": _stamp(row["revoked_at"]),
        "revocation_reason": row["revocation_reason"],
        "created_at": row["created_at"].isoformat(),
    }
    if pem:
        body["certificate_pem"] = _leaf_pem(row["chain_pem"])
    return body


def _leaf_pem(chain: str | None) -> str | None:
    if not chain:
        return None
    marker = "-----END CERTIFICATE-----"
    return chain[: chain.index(marker) + len(marker)] + "\n"


@API.route(
    "GET",
    "/tenants/{tenant}/certificates",
    operation_id="searchCertificates",
    permission=Permission.CERTIFICATES_READ,
    summary="Certificate inventory: by name, status, issuer, account and expiry window",
    response=page_of(CERTIFICATE),
    query=(
        QueryParam(
            "name",
            {"type": "string", "minLength": 1, "maxLength": 255},
            'an exact name, or ".example.com" for every name under example.com',
        ),
        _status_param(["reserved", "issued", "revoked", "abandoned"]),
        QueryParam("issuer", {"type": "string", "maxLength": 64}, "issued by this issuer"),
        QueryParam("account", {"type": "string", "maxLength": 64}, "ordered by this account"),
        QueryParam(
            "expires_after", {"type": "string", "format": "date-time"}, "notAfter at or after"
        ),
        QueryParam("expires_before", {"type": "string", "format": "date-time"}, "notAfter before"),
        *PAGE_PARAMS,
    ),
    tag="inventory",
)
async def search_certificates(call: ApiCall) -> Answer:
    q, limit = call.query, call.query["limit"]
    query = CertificateQuery(
        name=q["name"].lower() if "name" in q else None,
        status=q.get("status"),
        issuer_id=q.get("issuer"),
        account_id=q.get("account"),
        expires_after=q.get("expires_after"),
        expires_before=q.get("expires_before"),
    )
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.inventory.certificates(
            query, cursor=time_cursor(q.get("cursor")), limit=limit + 1
        )
    page, cursor = next_time_cursor(rows, limit)
    return Answer({"items": [_certificate(r) for r in page], "next_cursor": cursor})


@API.route(
    "GET",
    "/tenants/{tenant}/certificates/{certificate}",
    operation_id="getCertificate",
    permission=Permission.CERTIFICATES_READ,
    summary="One certificate, with its PEM",
    response=CERTIFICATE,
    tag="inventory",
)
async def get_certificate(call: ApiCall) -> Answer:
    async with call.services.uow.begin(call.scope, write=False) as tx:
        row = await tx.inventory.certificate(call.path("certificate"))
    if row is None:
        raise not_found("certificate")
    return Answer(_certificate(row, pem=True))


# RFC 5280 §5.3.1 reasons an administrator may give: unspecified, keyCompromise,
# affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.
ADMIN_REASONS = [0, 1, 3, 4, 5, 9]


@API.route(
    "POST",
    "/tenants/{tenant}/certificates/{certificate}/revoke",
    operation_id="revokeCertificate",
    permission=Permission.CERTIFICATES_REVOKE,
    summary="Revoke an issued certificate (CRL and OCSP answer it at once)",
    request=obj(["reason"], {"reason": {"enum": ADMIN_REASONS}}),
    response=CERTIFICATE,
    tag="inventory",
)
async def revoke_certificate(call: ApiCall) -> Answer:
    cert_id, reason, services = call.path("certificate"), call.body["reason"], call.services
    async with services.uow.begin(call.scope) as tx:
        cert = await tx.certificates.get(cert_id)
        if cert is None or cert.chain_pem is None:
            raise not_found("certificate")
        now = services.clock.now()
        if not await tx.certificates.revoke(cert_id, reason, now):
            raise conflict(f"certificate is {cert.status.value}")
        await tx.events.append(
            EventType.REVOKED,
            object_type="certificate",
            object_id=cert_id,
            actor=call.principal.actor,
            now=now,
            reason=reason,
            serial=cert.serial,
        )
        row = await tx.inventory.certificate(cert_id)
    assert row is not None
    return Answer(_certificate(row, pem=True))
