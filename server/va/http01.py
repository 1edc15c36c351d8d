"""http-01 (RFC 8555 §8.3; RFC 8738 §4 for IP identifiers).

GET ``http://{host}:{http01_port}/.well-known/acme-challenge/{token}`` and compare the body, with
trailing whitespace removed, to the key authorization. Redirects are followed by hand so that
each hop is checked like the first: scheme http/https only, ports 80/443 (or the configured
http-01 port), the host re-resolved and re-vetted, at most ``max_redirects`` of them. https hops
do not verify the certificate (as Boulder): control is shown by the content, not the TLS chain.

Every connection goes to an address `targets` vetted: aiohttp is given a resolver that knows
only that address, so it cannot resolve the name again on its own.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.va.api import IPAddress, NetworkPolicy, Resolver, ValidationRecord
from certplane.server.va.targets import (
    DialError,
    dial,
    is_hostname,
    new_record,
    parse_ip,
    resolve_target,
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "certplane-va (+RFC 8555 §8.3)"
# RFC 8555 §8.3: "... ignoring any trailing whitespace"; the same set Boulder trims.
TRAILING_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class HopResponse:
    """What one request returned; ``body`` is None when it exceeded the body limit."""

    status: int
    location: str | None
    body: bytes | None


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that answers every lookup with the one vetted address."""

    def __init__(self, address: IPAddress) -> None:
        self._address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Ignore ``family``: the vetted address is the only answer there is."""
        af = socket.AF_INET6 if self._address.version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=str(self._address),
                port=port,
                family=af,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to release."""


def challenge_url(host: str, port: int, token: str) -> URL:
    """The §8.3 URL; an IP identifier is its literal (RFC 8738 §4), IPv6 in brackets."""
    ip = parse_ip(host)
    url_host = f"[{ip}]" if ip is not None and ip.version == 6 else host
    default = port == 80
    authority = url_host if default else f"{url_host}:{port}"
    return URL(f"http://{authority}/.well-known/acme-challenge/{token}")


async def validate_http01(
    resolver: Resolver,
    policy: NetworkPolicy,
    host: str,
    token: str,
    key_authorization: str,
    records: list[ValidationRecord],
) -> None:
    """Fetch the key authorization for ``host``; raise `AcmeProblem` unless it matches."""
    url = challenge_url(host, policy.http01_port, token)
    for _ in range(policy.max_redirects + 1):
        response = await _fetch(resolver, policy, url, records)
        if response.status in REDIRECT_STATUSES and response.location is not None:
            url = redirect_target(url, response.location, policy)
            continue
        check_response(url, response, key_authorization, policy)
        return
    raise AcmeProblem(
        ProblemType.CONNECTION,
        f"Too many redirects: more than {policy.max_redirects} while fetching {url}",
    )


def check_response(
    url: URL, response: HopResponse, key_authorization: str, policy: NetworkPolicy
) -> None:
    """Status 200 and the key authorization as body (§8.3); never echo the body back."""
    if response.status != 200:
        raise AcmeProblem(
            ProblemType.UNAUTHORIZED, f"Invalid response from {url}: HTTP {response.status}"
        )
    if response.body is None:
        raise AcmeProblem(
            ProblemType.INCORRECT_RESPONSE,
            f"Response from {url} is larger than {policy.http_body_limit} bytes",
        )
    if response.body.rstrip(TRAILING_WHITESPACE) != key_authorization.encode("ascii"):
        raise AcmeProblem(
            ProblemType.INCORRECT_RESPONSE,
            f"The key authorization file from {url} does not match the expected key "
            f"authorization ({len(response.body)} bytes received)",
        )


def redirect_target(current: URL, location: str, policy: NetworkPolicy) -> URL:
    """The next hop's URL after checking scheme, host and port; raise `AcmeProblem` if bad."""
    try:
        target = current.join(URL(location))
        port = target.port
    except ValueError as exc:
        raise _bad_redirect(f"Invalid redirect target {location!r}") from exc
    if target.scheme not in ("http", "https"):
        raise _bad_redirect(
            f"Invalid protocol scheme in redirect target {target.scheme!r}: "
            'only "http" and "https" are supported'
        )
    host = target.raw_host or ""
    if parse_ip(host) is None and not is_hostname(host):
        raise _bad_redirect(f"Invalid host in redirect target {host!r}")
    if port not in policy.redirect_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.redirect_ports))
        raise _bad_redirect(
            f"Invalid port in redirect target: only ports {allowed} are supported, not {port}"
        )
    return URL.build(
        scheme=target.scheme,
        host=host,
        port=target.explicit_port,
        path=target.raw_path or "/",
        query_string=target.raw_query_string,
        encoded=True,
    )


def _bad_redirect(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.CONNECTION, detail)


async def _fetch(
    resolver: Resolver, policy: NetworkPolicy, url: URL, records: list[ValidationRecord]
) -> HopResponse:
    """One hop: resolve and vet its host, record it, GET it from a vetted address."""
    host = url.raw_host or ""
    port = url.port if url.port is not None else 80
    record = new_record(host, port, url=str(url))
    records.append(record)
    target = await resolve_target(resolver, policy, host, record)

    async def attempt(address: IPAddress, connect_timeout: float | None) -> HopResponse:
        return await _get(url, address, port, connect_timeout, policy.http_body_limit)

    response: HopResponse = await dial(target, policy, record, attempt)
    return response


async def _get(
    url: URL, address: IPAddress, port: int, connect_timeout: float | None, limit: int
) -> HopResponse:
    """GET ``url`` over a connection to ``address``; dial failures raise `DialError`."""
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(address), use_dns_cache=False, ssl=False, force_close=True
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
        headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
    )
    async with session:
        try:
            async with session.get(url, allow_redirects=False) as resp:
                body = await _read_limited(resp.content, limit)
                return HopResponse(resp.status, resp.headers.get("Location"), body)
        except aiohttp.ClientError as exc:
            raise _classify(exc, address, port) from exc


async def _read_limited(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """At most ``limit`` bytes of body, or None when the body is longer."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


# aiohttp failures after the connection is up: none is worth another address.
_HTTP_FAILURES: tuple[tuple[type[aiohttp.ClientError], ProblemType, str], ...] = (
    (aiohttp.ClientSSLError, ProblemType.TLS, "TLS handshake failed on a redirect hop"),
    (aiohttp.ServerTimeoutError, ProblemType.CONNECTION, "Timeout after connect"),
    (aiohttp.ServerDisconnectedError, ProblemType.CONNECTION, "server closed the connection"),
)


def _classify(exc: aiohttp.ClientError, address: IPAddress, port: int) -> Exception:
    """Map an aiohttp failure to a fallback-worthy `DialError` or a final `AcmeProblem`."""
    where = f"{address} port {port}"
    failure: Exception
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        failure = DialError(f"{where}: Timeout during connect (likely firewall problem)")
    elif isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError
    ):
        failure = DialError(f"{where}: {exc.os_error.strerror or type(exc.os_error).__name__}")
    else:
        kind, what = next(
            ((kind, what) for cls, kind, what in _HTTP_FAILURES if isinstance(exc, cls)),
            (ProblemType.CONNECTION, "malformed HTTP response"),
        )
        failure = AcmeProblem(kind, f"{where}: {what}")
    return failure
