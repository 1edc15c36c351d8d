"""RFC 6761 §6.3 for the demo: names under ``.localhost`` resolve to loopback.

Used only when ``validation.localhost_names`` is on (the demo configuration), together with
``validation.allowed_networks`` admitting loopback; every other name goes to the inner resolver.
"""

from __future__ import annotations

import ipaddress

from certplane.server.va.api import CAARecord, IPAddress, Resolver

LOOPBACK: tuple[IPAddress, ...] = (ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1"))


def is_localhost_name(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


class LocalhostResolver:
    def __init__(self, inner: Resolver) -> None:
        self._inner = inner

    async def resolve_addresses(self, name: str) -> list[IPAddress]:
        if is_localhost_name(name):
            return list(LOOPBACK)
        return await self._inner.resolve_addresses(name)

    async def resolve_txt(self, name: str) -> list[str]:
        if is_localhost_name(name):
            return []
        return await self._inner.resolve_txt(name)

    async def resolve_caa(self, name: str) -> list[CAARecord]:
        if is_localhost_name(name):
            return []
        return await self._inner.resolve_caa(name)
