"""Small response helpers shared by the handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def acme_json(
    body: dict[str, Any],
    *,
    status: int = 200,
    location: str | None = None,
    retry_after: int | None = None,
    links: tuple[str, ...] = (),
) -> web.Response:
    response = web.Response(status=status, text=json.dumps(body), content_type="application/json")
    if location is not None:
        response.headers["Location"] = location
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    for link in links:
        response.headers.add("Link", link)
    return response
