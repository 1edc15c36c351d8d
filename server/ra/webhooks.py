"""Webhook notifications: written to an outbox in the transaction of the change they announce,
delivered by the job worker, signed with the tenant's HMAC-SHA256 key.

The request is ``POST <url>`` with a JSON body and ``Certplane-Signature: t=<unix time>,v1=<hex>``
where ``v1 = HMAC-SHA256(key, "<t>.<body>")`` (the receiver recomputes it and rejects a stale
``t``). ``Certplane-Delivery`` is the delivery id: deliveries are retried, receivers dedupe on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from certplane.ca.keys.envelope import MasterKey, open_sealed, seal
from certplane.server.storage.uow import TenantTx

log = logging.getLogger(__name__)

WEBHOOK_JOB = "webhook"
MAX_ATTEMPTS = 8
SIGNATURE_HEADER = "Certplane-Signature"
DELIVERY_HEADER = "Certplane-Delivery"


def webhook_context(tenant_id: str) -> bytes:
    """The envelope context binding a sealed webhook key to its tenant."""
    return b"certplane webhook v1|" + tenant_id.encode()


def seal_secret(master: MasterKey, tenant_id: str, secret: bytes) -> bytes:
    return seal(master, secret, context=webhook_context(tenant_id))


def open_secret(master: MasterKey, tenant_id: str, sealed: bytes) -> bytes:
    return open_sealed(master, sealed, context=webhook_context(tenant_id))


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Certplane-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def retry_delay(attempts: int) -> timedelta:
    """Backoff after ``attempts`` failed deliveries: 10 s, 40 s, 160 s, … capped at one hour."""
    return min(timedelta(seconds=10 * 4 ** max(0, attempts - 1)), timedelta(hours=1))


async def announce(
    tx: TenantTx, event: str, data: dict[str, Any], now: datetime, *, webhook_url: str
) -> None:
    """Queue ``event`` for the tenant's webhook (nothing when it has none), in ``tx``."""
    if not webhook_url:
        return
    body = json.dumps(
        {"type": event, "tenant": tx.scope.slug, "created_at": now.isoformat(), "data": data},
        sort_keys=True,
    )
    delivery_id = await tx.webhooks.add(event, body, now)
    await tx.jobs.enqueue(
        WEBHOOK_JOB, delivery_id, now=now, locked_until=None, deadline=now + timedelta(days=2)
    )
