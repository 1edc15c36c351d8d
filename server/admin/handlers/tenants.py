"""Tenants: create, list, show, suspend and activate; the tenant's webhook."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from typing import Any

from certplane.ca.keys.api import KeyAlgorithm
from certplane.policy.rbac import Permission
from certplane.server.admin.app_support import provisioning_errors, support_list_access
from certplane.server.admin.endpoints import API, Answer, ApiCall
from certplane.server.admin.problems import invalid
from certplane.server.admin.schemas import (
    BOOLEAN,
    INTEGER,
    NULLABLE_STRING,
    PAGE_PARAMS,
    SLUG,
    STRING,
    TIMESTAMP,
    key_after,
    keyed_page,
    obj,
    page_of,
)
from certplane.server.admin.views import tenant_json
from certplane.server.model import EventType, HierarchyPattern, TenantStatus
from certplane.server.ra.provisioning import MAX_DISPLAY_NAME, IssuerSpec
from certplane.server.ra.webhooks import seal_secret
from certplane.server.storage.scope import TenantScope

TENANT: dict[str, Any] = obj(
    [
        "slug",
        "id",
        "name",
        "status",
        "external_account_required",
        "directory",
        "created_at",
        "tier",
        "policy_version",
        "webhook_url",
        "aia_ocsp",
        "aia_ca_issuers",
        "limit_overrides",
    ],
    {
        "slug": SLUG,
        "id": STRING,
        "name": STRING,
        "status": {"enum": ["active", "suspended"]},
        "external_account_required": BOOLEAN,
        "directory": STRING,
        "created_at": TIMESTAMP,
        "tier": STRING,
        "policy_version": {"type": ["integer", "null"]},
        "webhook_url": STRING,
        "aia_ocsp": BOOLEAN,
        "aia_ca_issuers": BOOLEAN,
        "limit_overrides": {"type": "object", "additionalProperties": STRING},
    },
)


@API.route(
    "GET",
    "/tenants",
    operation_id="listTenants",
    permission=Permission.TENANTS_LIST,
    summary="Every tenant and its status (support: with a stated reason, recorded per tenant)",
    response=page_of(TENANT),
    query=PAGE_PARAMS,
    tag="tenants",
)
async def list_tenants(call: ApiCall) -> Answer:
    after = key_after(call.query)
    tenants = [
        t for t in await call.services.provisioner.tenants() if after is None or t.slug > after
    ]
    page, cursor = keyed_page(tenants, call.query["limit"], lambda t: t.slug)
    if call.reason is not None:
        await support_list_access(call, page)
    base = call.services.config.server.base_url
    return Answer({"items": [tenant_json(t, base) for t in page], "next_cursor": cursor})


# Name constraints (RFC 5280 §4.2.1.10): a DNS name in LDH A-labels ("." first: only the names
# below it), or an IP network in CIDR notation.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_SUBTREE = re.compile(rf"\.?(?:{_LABEL}\.)*{_LABEL}")
DNS_SUBTREE = {"type": "string", "maxLength": 253, "pattern": f"^{_DNS_SUBTREE.pattern}$"}
IP_SUBTREE = {"type": "string", "maxLength": 43, "description": "e.g. 10.0.0.0/8"}
NEW_TENANT = obj(
    ["slug"],
    {
        "slug": SLUG,
        "name": {"type": "string", "minLength": 1, "maxLength": 32},
        "external_account_required": BOOLEAN,
        "algorithm": {"enum": [a.value for a in KeyAlgorithm]},
        "dedicated_root": BOOLEAN,
        "permit_dns": {"type": "array", "items": DNS_SUBTREE, "maxItems": 50},
        "permit_ip": {"type": "array", "items": IP_SUBTREE, "maxItems": 50},
    },
)


def _name_constraints(body: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The permitted DNS and IP subtrees, checked before any key is made (400 naming each)."""
    dns, ips = tuple(body.get("permit_dns", ())), tuple(body.get("permit_ip", ()))
    for index, name in enumerate(dns):
        if _DNS_SUBTREE.fullmatch(name) is None:
            raise invalid(f"permit_dns: {name!r} is not a DNS name", f"/permit_dns/{index}")
    for index, network in enumerate(ips):
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise invalid(
                f"permit_ip: {network!r} is not an IP network", f"/permit_ip/{index}"
            ) from None
    return dns, ips


@API.route(
    "POST",
    "/tenants",
    operation_id="createTenant",
    permission=Permission.TENANTS_CREATE,
    summary="Create a tenant with its own issuing CA",
    request=NEW_TENANT,
    response=TENANT,
    status=201,
    tag="tenants",
)
async def create_tenant(call: ApiCall) -> Answer:
    body = call.body
    ca = call.services.config.ca
    permit_dns, permit_ip = _name_constraints(body)
    spec = IssuerSpec(
        KeyAlgorithm(body.get("algorithm", ca.key_algorithm)),
        pattern=(
            HierarchyPattern.DEDICATED_ROOT
            if body.get("dedicated_root")
            else HierarchyPattern.PLATFORM_ROOT
        ),
        permitted_dns_names=permit_dns,
        permitted_ip_networks=permit_ip,
    )
    with provisioning_errors():
        tenant = await call.services.provisioner.create_tenant(
            body["slug"],
            body.get("name", body["slug"][:MAX_DISPLAY_NAME]),
            eab_required=body.get("external_account_required", True),
            spec=spec,
            actor=call.principal.actor,
        )
    base = call.services.config.server.base_url
    return Answer(tenant_json(tenant, base), 201, location=f"/tenants/{tenant.slug}")


@API.route(
    "GET",
    "/tenants/{tenant}",
    operation_id="getTenant",
    permission=Permission.TENANTS_READ,
    summary="A tenant and its status",
    response=TENANT,
    tag="tenants",
)
async def get_tenant(call: ApiCall) -> Answer:
    assert call.tenant is not None
    return Answer(tenant_json(call.tenant, call.services.config.server.base_url))


async def _set_status(call: ApiCall, status: TenantStatus) -> Answer:
    with provisioning_errors():
        tenant = await call.services.provisioner.set_tenant_status(
            call.scope.slug, status, actor=call.principal.actor
        )
    return Answer(tenant_json(tenant, call.services.config.server.base_url))


@API.route(
    "POST",
    "/tenants/{tenant}/suspend",
    operation_id="suspendTenant",
    permission=Permission.TENANTS_STATUS,
    summary="Suspend a tenant: no new orders or issuance; everything else keeps answering",
    response=TENANT,
    tag="tenants",
)
async def suspend_tenant(call: ApiCall) -> Answer:
    return await _set_status(call, TenantStatus.SUSPENDED)


@API.route(
    "POST",
    "/tenants/{tenant}/activate",
    operation_id="activateTenant",
    permission=Permission.TENANTS_STATUS,
    summary="Activate a suspended tenant",
    response=TENANT,
    tag="tenants",
)
async def activate_tenant(call: ApiCall) -> Answer:
    return await _set_status(call, TenantStatus.ACTIVE)


WEBHOOK_REQUEST = obj(["url"], {"url": {"type": "string", "maxLength": 2000}})
WEBHOOK = obj(
    ["url", "secret", "signature_header"],
    {"url": STRING, "secret": NULLABLE_STRING, "signature_header": STRING, "version": INTEGER},
)


@API.route(
    "PUT",
    "/tenants/{tenant}/webhook",
    operation_id="setWebhook",
    permission=Permission.WEBHOOK_WRITE,
    summary="Where approval notifications go; a new HMAC-SHA256 key is returned, once",
    description='An empty url turns notifications off. Each POST carries "Certplane-Signature: '
    't=<unix time>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>".',
    request=WEBHOOK_REQUEST,
    response=WEBHOOK,
    tag="tenants",
)
async def set_webhook(call: ApiCall) -> Answer:
    url = call.body["url"].strip()
    if url and not url.startswith(("https://", "http://")):
        raise invalid("url: expected an http(s) URL, or empty to turn webhooks off", "/url")
    services, tenant = call.services, call.tenant
    assert tenant is not None
    secret = secrets.token_bytes(32) if url else None
    sealed = seal_secret(services.master_key, tenant.id, secret) if secret else None
    async with services.uow.provisioning() as ptx:
        await ptx.platform.set_webhook(tenant.id, url, sealed)
        await ptx.tenant(TenantScope(tenant.id, tenant.slug)).events.append(
            EventType.WEBHOOK_CONFIGURED,
            object_type="tenant",
            object_id=tenant.id,
            actor=call.principal.actor,
            now=services.clock.now(),
            url=url,
        )
    shown = base64.urlsafe_b64encode(secret).rstrip(b"=").decode() if secret else None
    return Answer({"url": url, "secret": shown, "signature_header": "Certplane-Signature"})
