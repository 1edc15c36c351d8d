"""Webhook delivery (the worker side of ``server/ra/webhooks.py``): one POST per attempt,
retried with backoff, never to a destination outside the allowed networks."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from certplane.ca.keys.envelope import MasterKey
from certplane.server.clock import Clock
from certplane.server.ra.webhooks import (
    DELIVERY_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    open_secret,
    retry_delay,
    signature,
)
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import UnitOfWork
from certplane.server.va.special_purpose import is_special_purpose

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DeliveryRefused(Exception):
    """The destination is not allowed (scheme, or an address in a special-purpose network)."""


async def _addresses(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_destination(url: str, allowed: Sequence[IpNetwork]) -> list[str]:
    """The addresses to connect to: only http(s), and never a special-purpose address
    (loopback, private, link-local…) unless an allowed network holds it — a tenant must not aim
    the server at its own network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryRefused("the webhook URL must be http or https with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _addresses(parts.hostname, port)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if is_special_purpose(ip) is not None and not any(ip in net for net in allowed):
            raise DeliveryRefused(f"the webhook host resolves to {ip}, a special-purpose address")
    if not addresses:
        raise DeliveryRefused("the webhook host does not resolve")
    return addresses


class PinnedResolver(AbstractResolver):
    """Connects only to the addresses ``check_destination`` approved: a second lookup between
    the check and the connection (DNS rebinding) cannot move the delivery elsewhere."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = tuple(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


class WebhookSender:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        master: MasterKey,
        allowed_networks: Sequence[IpNetwork],
        timeout_seconds: float = 10.0,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._master = master
        self._allowed = tuple(allowed_networks)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def deliver(self, scope: TenantScope, job_id: str, delivery_id: str) -> None:
        """One attempt; the outcome (delivered, retry later, failed) is recorded."""
        async with self._uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(scope.slug)
            sealed = await platform.webhook_secret(scope.tenant_id)
        async with self._uow.begin(scope, write=False) as tx:
            delivery = await tx.webhooks.get(delivery_id)
        if tenant is None or delivery is None or delivery["status"] != "pending":
            await self._finish(scope, job_id, delivery_id, None, "done")
            return
        if not tenant.webhook_url or sealed is None:
            await self._finish(scope, job_id, delivery_id, "no webhook configured", "failed")
            return
        secret = open_secret(self._master, scope.tenant_id, sealed)
        attempts = int(delivery["attempts"]) + 1
        error = await self._post(tenant.webhook_url, secret, delivery_id, delivery["body"])
        await self._outcome(scope, job_id, delivery_id, attempts, error)

    async def _post(self, url: str, secret: bytes, delivery_id: str, body: str) -> str | None:
        """None when the receiver answered 2xx, else why not."""
        payload = body.encode()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery_id,
            SIGNATURE_HEADER: signature(secret, int(self._clock.now().timestamp()), payload),
        }
        try:
            addresses = await check_destination(url, self._allowed)
            connector = aiohttp.TCPConnector(resolver=PinnedResolver(addresses))
            async with (
                aiohttp.ClientSession(timeout=self._timeout, connector=connector) as session,
                session.post(url, data=payload, headers=headers, allow_redirects=False) as resp,
            ):
                if 200 <= resp.status < 300:
                    return None
                return f"the receiver answered HTTP {resp.status}"
        except DeliveryRefused as exc:
            return str(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _outcome(
        self, scope: TenantScope, job_id: str, delivery_id: str, attempts: int, error: str | None
    ) -> None:
        now = self._clock.now()
        async with self._uow.begin(scope) as tx:
            if error is None:
                status = "delivered"
            elif attempts >= MAX_ATTEMPTS:
                status = "failed"
            else:
                status = "pending"
            await tx.webhooks.record_attempt(
                delivery_id, status=status, attempts=attempts, error=error, now=now
            )
            if status == "pending":
                await tx.jobs.reschedule(job_id, now + retry_delay(attempts), error or "")
            else:
                await tx.jobs.finish(job_id, "done" if error is None else "failed", error)
        if error is not None:
            log.warning("webhook delivery %s attempt %d: %s", delivery_id, attempts, error)

    async def _finish(
        self, scope: TenantScope, job_id: str, delivery_id: str, error: str | None, status: str
    ) -> None:
        async with self._uow.begin(scope) as tx:
            if error is not None:
                await tx.webhooks.record_attempt(
                    delivery_id, status="failed", attempts=0, error=error, now=self._clock.now()
                )
            await tx.jobs.finish(job_id, status, error)
