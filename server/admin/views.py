"""Control-plane records as JSON: one rendering for the management API and for
``certplane --json``, so the two never disagree."""

from __future__ import annotations

from typing import Any

from certplane.server.model import EabKey, Tenant


def tenant_json(tenant: Tenant, base_url: str) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "id": tenant.id,
        "name": tenant.display_name,
        "status": tenant.status.value,
        "external_account_required": tenant.external_account_required,
        "directory": f"{base_url}/acme/{tenant.slug}/directory",
        "created_at": tenant.created_at.isoformat(),
        "aia_ocsp": tenant.aia_ocsp,
        "aia_ca_issuers": tenant.aia_ca_issuers,
        "limit_overrides": dict(tenant.limit_overrides),
        "tier": tenant.tier,
        "policy_version": tenant.policy_version,
        "webhook_url": tenant.webhook_url,
    }


def eab_json(key: EabKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "label": key.label,
        "status": key.status.value,
        "account_id": key.account_id,
        "created_at": key.created_at.isoformat(),
        "created_by": key.created_by,
    }
