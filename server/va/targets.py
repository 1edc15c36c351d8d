"""Where a connecting challenge may go: resolve, vet, then dial only what was vetted.

http-01 and tls-alpn-01 share this (RFC 8555 §8.3, RFC 8737 §3, RFC 8738 §4). The addresses are
resolved here, special-purpose ones are dropped unless the `NetworkPolicy` re-admits them, and the
caller connects to exactly the address it was given: nothing re-resolves the name behind our back
(no DNS rebinding between the check and the connection).

Like Boulder, the VA tries the first usable IPv6 address, then falls back to the first usable IPv4
address when the IPv6 connection cannot be established.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TypeVar

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.va.api import DnsError, IPAddress, NetworkPolicy, Resolver, ValidationRecord
from certplane.server.va.special_purpose import is_special_purpose

T = TypeVar("T")

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC = re.compile(r"[0-9]+")
_MAX_REFUSED_SHOWN = 3


class DialError(Exception):
    """A TCP connection to one address could not be established; the next address may work."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class DialTarget:
    """A host and the addresses the VA may connect to for it, in dialing order."""

    host: str
    dial_order: tuple[IPAddress, ...]


def new_record(host: str, port: int, url: str | None = None) -> ValidationRecord:
    """A validation record for one connection; resolution and the dial fill in the rest."""
    record: ValidationRecord = {} if url is None else {"url": url}
    record.update(hostname=host, port=str(port))
    return record


def parse_ip(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (brackets allowed), else None."""
    try:
        return ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def is_hostname(host: str) -> bool:
    """LDH labels and a non-numeric last label, so ``127.1`` or ``2130706433`` are no names."""
    labels = host.lower().removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not _NUMERIC.fullmatch(labels[-1])


async def resolve_target(
    resolver: Resolver, policy: NetworkPolicy, host: str, record: ValidationRecord
) -> DialTarget:
    """Resolve ``host`` (a name or IP literal) and keep the addresses the policy allows;
    ``record`` gets ``addressesResolved``.

    Raises `AcmeProblem`: ``dns`` when the lookup fails or finds nothing, ``connection`` when
    every address found is special-purpose and refused.
    """
    literal = parse_ip(host)
    resolved = (literal,) if literal is not None else await _lookup(resolver, host)
    record["addressesResolved"] = [str(ip) for ip in resolved]
    usable = [ip for ip in resolved if policy.is_allowed(ip)]
    if not usable:
        raise AcmeProblem(ProblemType.CONNECTION, _refusal_detail(host, resolved))
    return DialTarget(host, _dial_order(usable))


async def _lookup(resolver: Resolver, host: str) -> tuple[IPAddress, ...]:
    try:
        addresses = await resolver.resolve_addresses(host)
    except DnsError as exc:
        raise AcmeProblem(ProblemType.DNS, exc.detail) from exc
    if not addresses:
        raise AcmeProblem(ProblemType.DNS, f"No valid IP addresses found for {host}")
    return tuple(addresses)


def _refusal_detail(host: str, refused: tuple[IPAddress, ...]) -> str:
    shown = [f"{ip} ({is_special_purpose(ip)})" for ip in refused[:_MAX_REFUSED_SHOWN]]
    more = len(refused) - len(shown)
    suffix = f" and {more} more" if more > 0 else ""
    return (
        f"No usable address for {host}: special-purpose address {', '.join(shown)}{suffix} refused"
    )


def _dial_order(usable: list[IPAddress]) -> tuple[IPAddress, ...]:
    first_v6 = next((ip for ip in usable if ip.version == 6), None)
    first_v4 = next((ip for ip in usable if ip.version == 4), None)
    return tuple(ip for ip in (first_v6, first_v4) if ip is not None)


async def dial(
    target: DialTarget,
    policy: NetworkPolicy,
    record: ValidationRecord,
    attempt: Callable[[IPAddress, float | None], Awaitable[T]],
) -> T:
    """Run ``attempt(address, connect_timeout)`` over the dialing order, falling back on
    `DialError`; the record gets ``addressUsed`` and, after a fallback, ``addressesTried``.

    While a fallback remains, the connect timeout is half the validation timeout, so a silent
    IPv6 path cannot eat the whole budget; the last address gets no timeout of its own (the
    caller's overall deadline applies).
    """
    tried: list[str] = []
    for index, address in enumerate(target.dial_order):
        is_last = index == len(target.dial_order) - 1
        record["addressUsed"] = str(address)
        try:
            return await attempt(address, None if is_last else policy.timeout_seconds / 2)
        except DialError as exc:
            if is_last:
                raise AcmeProblem(ProblemType.CONNECTION, exc.detail) from exc
            tried.append(str(address))
            record["addressesTried"] = list(tried)
    raise AssertionError("a DialTarget always has at least one address")
