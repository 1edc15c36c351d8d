"""One full issuance (newOrder → certificate) and the http-01 responder it needs.

The responder is a real aiohttp server on a loopback port, in the benchmark's own event loop:
the server under test fetches ``/.well-known/acme-challenge/{token}`` from it (RFC 8555 §8.3).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cpbench.client import Account, AcmeError, b64, make_csr

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class Responder:
    """Serves key authorizations from a dict; counts the fetches it answered."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.hits = 0
        self.misses = 0
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get(CHALLENGE_PREFIX + "{token}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        body = self.tokens.get(request.match_info["token"])
        if body is None:
            self.misses += 1
            return web.Response(status=404, text="unknown token")
        self.hits += 1
        return web.Response(text=body)


@dataclass(frozen=True)
class PollPolicy:
    """Client-side polling: ``first`` seconds, times ``factor`` per poll, at most ``cap``.

    The same policy for every target; Retry-After is ignored on purpose (certplane says 3 s while
    processing, which would measure the header, not the server).
    """

    first: float = 0.005
    factor: float = 1.5
    cap: float = 0.25
    max_polls: int = 200


@dataclass(frozen=True)
class Issued:
    latency: float
    requests: int
    polls: int


async def poll_status(
    acct: Account, url: str, label: str, want: str, policy: PollPolicy
) -> tuple[dict[str, Any], int]:
    """POST-as-GET ``url`` until its status is ``want``; (document, polls). Bounded."""
    delay = policy.first
    for polls in range(1, policy.max_polls + 1):
        await asyncio.sleep(delay)
        doc = await acct.get_json(url, label)
        if doc.get("status") == want:
            return doc, polls
        if doc.get("status") == "invalid":
            raise AcmeError(f"{label} invalid: {_error_of(doc)}")
        delay = min(delay * policy.factor, policy.cap)
    raise AcmeError(f"{label} not {want} after {policy.max_polls} polls")


def _error_of(doc: dict[str, Any]) -> Any:
    if "error" in doc:
        return doc["error"]
    errors = [c.get("error") for c in doc.get("challenges", ()) if c.get("error")]
    return errors or doc


async def issue_one(acct: Account, name: str, responder: Responder, policy: PollPolicy) -> Issued:
    """newOrder → authz → http-01 → poll → finalize (fresh CSR) → poll → download."""
    started, requests_before = time.perf_counter(), acct.transport.requests
    reply = await acct.post(
        acct.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}, "new-order"
    )
    if reply.status != 201:
        raise AcmeError(f"newOrder: HTTP {reply.status} {reply.body[:300]!r}")
    order, order_url = reply.json(), reply.headers["Location"]
    polls = await _authorize(acct, order["authorizations"][0], responder, policy)
    order, more = await _finalize(acct, order, order_url, name, policy)
    cert = await acct.post(order["certificate"], None, "cert")
    if cert.status != 200 or b"BEGIN CERTIFICATE" not in cert.body:
        raise AcmeError(f"certificate: HTTP {cert.status} {cert.body[:300]!r}")
    latency = time.perf_counter() - started
    return Issued(latency, acct.transport.requests - requests_before, polls + more)


async def _authorize(
    acct: Account, authz_url: str, responder: Responder, policy: PollPolicy
) -> int:
    authz = await acct.get_json(authz_url, "authz")
    chall = next((c for c in authz["challenges"] if c["type"] == "http-01"), None)
    if chall is None:
        raise AcmeError(f"no http-01 challenge in {authz}")
    token = chall["token"]
    responder.tokens[token] = acct.key_authorization(token)
    try:
        reply = await acct.post(chall["url"], {}, "chall")
        if reply.status != 200:
            raise AcmeError(f"challenge: HTTP {reply.status} {reply.body[:300]!r}")
        if authz["status"] == "valid" or reply.json().get("status") == "valid":
            return 0
        _, polls = await poll_status(acct, authz_url, "authz-poll", "valid", policy)
        return polls
    finally:
        del responder.tokens[token]


async def _finalize(
    acct: Account, order: dict[str, Any], order_url: str, name: str, policy: PollPolicy
) -> tuple[dict[str, Any], int]:
    reply = await acct.post(order["finalize"], {"csr": b64(make_csr(name))}, "finalize")
    if reply.status != 200:
        raise AcmeError(f"finalize: HTTP {reply.status} {reply.body[:300]!r}")
    doc = reply.json()
    if doc.get("status") == "valid" and doc.get("certificate"):
        return doc, 0
    return await poll_status(acct, order_url, "order-poll", "valid", policy)
