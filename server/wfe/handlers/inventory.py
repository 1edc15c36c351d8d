"""An agent's inventory report (certplane's extension, ``meta.certplaneInventory``): an
account POST like any other (RFC 8555 §6.2: kid, nonce, url, signature, valid account), with
its own body limit, ``server.max_inventory_bytes``."""

from __future__ import annotations

from aiohttp import web

from certplane.server.ra.inventory_report import parse_report
from certplane.server.wfe.context import services
from certplane.server.wfe.handlers.common import acme_json
from certplane.server.wfe.jws import KeyMode, acme_post


async def report_inventory(request: web.Request) -> web.Response:
    """Replace the account's snapshot of the host and record the agent's events."""
    svc = services(request)
    limit = svc.config.server.max_inventory_bytes
    async with acme_post(request, KeyMode.KID, max_bytes=limit) as post:
        report = parse_report(post.payload)
        outcome = await svc.inventory.record_report(post.tx, post.require_account(), report)
        return acme_json(outcome.to_json())
