"""The HTTP side of ``certplane api``: where the API is, the bearer token, one call and its
answer (a problem document becomes an :class:`OutputError`), and :func:`run_api`.

The bearer token comes from ``CERTPLANE_API_TOKEN`` or ``--token-file``, never from the command
line (it would land in shell history and ``ps``).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from certplane.server.api_cli.commands import JSON_TYPE, Payload, read_file
from certplane.server.api_cli.output import render
from certplane.server.cli_ops import OutputError
from certplane.server.config import Config

URL_ENV = "CERTPLANE_API_URL"
TOKEN_ENV = "CERTPLANE_API_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
PREFIX = "/api/v1"
TIMEOUT = aiohttp.ClientTimeout(total=60)


# --- calls ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One call as the client sends it."""

    method: str
    path: str  # relative to the base URL, path parameters quoted
    query: dict[str, str] = field(default_factory=dict)
    payload: Payload | None = None
    operation_id: str | None = None  # None: a ``call`` of a path the table does not know
    public: bool = False  # no token needed

    @property
    def is_post(self) -> bool:
        return self.method == "POST"


class ApiClient:
    """One command's calls: bearer token, Idempotency-Key on POSTs, problems as OutputError."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, headers: Mapping[str, str]
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = dict(headers)

    async def send(self, request: ApiRequest, query: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON answer.

        Raises:
            OutputError: the API answered with a problem, or could not be reached.
        """
        url = self.base_url + request.path
        headers = dict(self.headers)
        if not request.is_post:
            headers.pop("Idempotency-Key", None)
        if request.payload is not None:
            headers["Content-Type"] = request.payload.content_type
        data = request.payload.data if request.payload is not None else None
        try:
            async with self.session.request(
                request.method, url, params=query or request.query, data=data, headers=headers
            ) as response:
                raw = await response.read()
                return _answer(response.status, response.reason or "", raw, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutputError(self._unreachable(request, exc)) from None

    async def every_page(self, request: ApiRequest) -> dict[str, Any]:
        """A list with every item: ``next_cursor`` followed to the end."""
        items: list[Any] = []
        query, seen = dict(request.query), set()
        while True:
            page = await self.send(request, query)
            items += page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return {"items": items, "next_cursor": None}
            if cursor in seen:
                raise OutputError("the API returned the same next_cursor twice")
            seen.add(cursor)
            query["cursor"] = cursor

    def _unreachable(self, request: ApiRequest, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        message = f"cannot reach the API at {self.base_url}: {reason}"
        if request.is_post:
            key = self.headers["Idempotency-Key"]
            message += (
                "\n(the request may have been applied: rerun the command with "
                f"--idempotency-key {key} to retry it safely)"
            )
        return message


def _answer(status: int, reason: str, raw: bytes, url: str) -> Any:
    try:
        body = json.loads(raw) if raw else None
        parsed = True
    except (ValueError, UnicodeDecodeError):
        body, parsed = None, False
    if status >= 400:
        if parsed and isinstance(body, dict) and "detail" in body:
            raise OutputError(problem_text(body))
        raise OutputError(f"HTTP {status} {reason} from {url}")
    if not parsed:
        raise OutputError(f"the answer from {url} is not JSON (HTTP {status})")
    return body


def problem_text(problem: Mapping[str, Any]) -> str:
    """A problem document (RFC 9457) as lines: its detail, then each field's pointer."""
    lines = [str(problem.get("detail") or problem.get("title") or "the API refused the request")]
    for error in problem.get("errors") or ():
        if isinstance(error, dict):
            lines.append(f"  at {error.get('pointer') or '/'}: {error.get('detail', '')}")
    return "\n".join(lines)


# --- where, who, and one command ------------------------------------------------------------------


def base_url(config: Config, args: argparse.Namespace) -> str:
    """--api-url, else $CERTPLANE_API_URL, else the configured API listener."""
    url = getattr(args, "api_url", None) or os.environ.get(URL_ENV) or _configured_url(config)
    return url.rstrip("/")


def _configured_url(config: Config) -> str:
    if config.api.share_acme_listener:
        return config.server.base_url.rstrip("/") + PREFIX
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    host = wildcard.get(config.api.listen_host, config.api.listen_host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.api.listen_port}{PREFIX}"


def bearer_token(args: argparse.Namespace) -> str:
    """The token from --token-file, else $CERTPLANE_API_TOKEN."""
    path = getattr(args, "token_file", None)
    token = (read_file(path) if path else os.environ.get(TOKEN_ENV, "")).strip()
    if not token:
        raise OutputError(
            f"no API token: set {TOKEN_ENV} or pass --token-file PATH "
            "(`certplane token create` mints the first one)"
        )
    if not token.isprintable() or any(c.isspace() for c in token):
        raise OutputError("the API token contains spaces or control characters")
    return token


def _headers(args: argparse.Namespace, request: ApiRequest) -> dict[str, str]:
    headers = {
        "Accept": f"{JSON_TYPE}, application/problem+json",
        "User-Agent": "certplane-cli",
        "Idempotency-Key": getattr(args, "idempotency_key", None) or str(uuid.uuid4()),
    }
    if not request.public or getattr(args, "token_file", None) or os.environ.get(TOKEN_ENV):
        headers["Authorization"] = f"Bearer {bearer_token(args)}"
    reason = getattr(args, "access_reason", None)
    if reason:
        headers["Certplane-Reason"] = reason
    return headers


async def run_api(config: Config, args: argparse.Namespace, *, json_output: bool) -> Any:
    """Run one ``certplane api`` command: the JSON body with ``--json``, else text."""
    request: ApiRequest = args.api_request(args)
    headers = _headers(args, request)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        client = ApiClient(session, base_url(config, args), headers)
        if getattr(args, "all", False):
            body = await client.every_page(request)
        else:
            body = await client.send(request)
    paged = not getattr(args, "all", False)
    return body if json_output else render(request.operation_id, body, paged=paged)
