"""`DnsResolver`: the VA's `Resolver` port on dnspython's ``dns.asyncresolver``.

Empty answers (NXDOMAIN, NODATA) are data: CAA tree climbing and "no TXT record" depend on them.
Failures (SERVFAIL, REFUSED, timeouts) raise `DnsError`, so callers fail closed (RFC 8659 §3:
a CA must not treat a lookup failure as permission). No cache: every validation asks afresh.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
from dns.rdata import Rdata
from dns.rdtypes.ANY.CAA import CAA
from dns.rdtypes.ANY.TXT import TXT

from certplane.server.va.api import CAARecord, DnsError, IPAddress, NetworkPolicy


class DnsResolver:
    """Resolves through ``policy.dns_servers`` (or the system's), bounded by its timeout."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=not policy.dns_servers)
        if policy.dns_servers:
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in policy.dns_servers
            ]
        self._resolver.timeout = policy.timeout_seconds
        self._resolver.lifetime = policy.timeout_seconds
        self._resolver.cache = None

    async def resolve_addresses(self, name: str) -> list[IPAddress]:
        """AAAA and A together; one family failing is tolerated when the other has addresses."""
        results = await asyncio.gather(
            self._query(name, "AAAA"), self._query(name, "A"), return_exceptions=True
        )
        addresses: list[IPAddress] = []
        errors: list[DnsError] = []
        for result in results:
            if isinstance(result, DnsError):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                addresses.extend(ip_address(rdata.to_text()) for rdata in result)
        if errors and not addresses:
            raise errors[0]
        return addresses

    async def resolve_txt(self, name: str) -> list[str]:
        """Each TXT record's character-strings joined (RFC 8555 §8.4 values are one string)."""
        return [
            b"".join(rdata.strings).decode("utf-8", errors="replace")
            for rdata in await self._query(name, "TXT")
            if isinstance(rdata, TXT)
        ]

    async def resolve_caa(self, name: str) -> list[CAARecord]:
        """The CAA RRset at ``name``; tag and value decoded leniently for the parser to judge."""
        return [
            CAARecord(
                flags=rdata.flags,
                tag=rdata.tag.decode("ascii", errors="replace"),
                value=rdata.value.decode("utf-8", errors="replace"),
            )
            for rdata in await self._query(name, "CAA")
            if isinstance(rdata, CAA)
        ]

    async def _query(self, name: str, rdtype: str) -> list[Rdata]:
        """One query for an absolute name; empty on NXDOMAIN/NODATA, `DnsError` on failure."""
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.LifetimeTimeout as exc:
            raise DnsError(f"DNS problem: query timed out looking up {rdtype} for {name}") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsError(
                f"DNS problem: SERVFAIL looking up {rdtype} for {name}"
                " - the domain's nameservers may be malfunctioning"
            ) from exc
        except dns.exception.DNSException as exc:
            raise DnsError(
                f"DNS problem: {type(exc).__name__} looking up {rdtype} for {name}"
            ) from exc
        return list(answer)
