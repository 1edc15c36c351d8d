"""`ValidationAuthority`: one entry point that turns a `ValidationRequest` into a verdict.

Validation failures are data, never exceptions (ARCHITECTURE.md §5): `validate` always returns a
`ValidationResult`. Inside, the challenge modules raise `AcmeProblem` and this module is the one
place that catches it. Anything unexpected is logged here with its traceback and reported to the
subscriber as a ``connection`` problem with a fixed detail.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from ipaddress import ip_address

from certplane.server.errors import AcmeProblem, ProblemType, malformed
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va.api import (
    NetworkPolicy,
    Resolver,
    ValidationRecord,
    ValidationRequest,
    ValidationResult,
)
from certplane.server.va.caa import check_caa
from certplane.server.va.dns01 import validate_dns01
from certplane.server.va.http01 import validate_http01
from certplane.server.va.tlsalpn01 import validate_tlsalpn01

log = logging.getLogger(__name__)

# RFC 8555 §8.1: a token uses only the base64url alphabet; anything else could escape the path.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class ValidationAuthority:
    """Stateless validation over an injected `Resolver`, within a `NetworkPolicy`.

    The caller logs ``policy.describe_overrides()`` once at start (app.py does).
    """

    def __init__(self, resolver: Resolver, policy: NetworkPolicy) -> None:
        self._resolver = resolver
        self._policy = policy

    async def validate(self, req: ValidationRequest) -> ValidationResult:
        """Check the challenge, then CAA when the tenant names CA identities (RFC 8659 §3)."""
        records: list[ValidationRecord] = []
        try:
            _check_request(req)
            await self._run_challenge(req, records)
        except AcmeProblem as failure:
            return ValidationResult(False, failure, tuple(records))
        except Exception:
            log.exception(
                "unexpected error during %s validation of %s",
                req.challenge_type,
                req.identifier.value,
            )
            detail = f"unexpected error during {req.challenge_type} validation"
            problem = AcmeProblem(ProblemType.CONNECTION, detail)
            return ValidationResult(False, problem, tuple(records))
        if req.caa_identities:
            caa = await self.check_caa(
                req.identifier, req.account_uri, req.challenge_type, req.caa_identities
            )
            if caa is not None:
                return ValidationResult(False, caa, tuple(records))
        return ValidationResult(True, None, tuple(records))

    async def check_caa(
        self,
        identifier: Identifier,
        account_uri: str,
        method: ChallengeType,
        caa_identities: Iterable[str],
    ) -> AcmeProblem | None:
        """CAA for ``identifier`` (RFC 8659, RFC 8657): None when issuance may proceed."""
        try:
            async with asyncio.timeout(self._policy.timeout_seconds):
                return await check_caa(
                    self._resolver, identifier, account_uri, method, caa_identities
                )
        except TimeoutError:
            detail = f"DNS problem: timeout while checking CAA for {identifier.base_domain}"
            return AcmeProblem(ProblemType.DNS, detail)
        except Exception:
            log.exception("unexpected error while checking CAA for %s", identifier.value)
            return AcmeProblem(ProblemType.DNS, "unexpected error while checking CAA")

    async def _run_challenge(self, req: ValidationRequest, records: list[ValidationRecord]) -> None:
        """Dispatch to the challenge module under the overall validation deadline."""
        try:
            async with asyncio.timeout(self._policy.timeout_seconds):
                await self._dispatch(req, records)
        except TimeoutError as exc:
            dns01 = req.challenge_type is ChallengeType.DNS_01
            kind = ProblemType.DNS if dns01 else ProblemType.CONNECTION
            detail = (
                f"Timeout after {self._policy.timeout_seconds:g} s during "
                f"{req.challenge_type} validation"
            )
            raise AcmeProblem(kind, detail) from exc

    async def _dispatch(self, req: ValidationRequest, records: list[ValidationRecord]) -> None:
        resolver, policy, ident = self._resolver, self._policy, req.identifier
        match req.challenge_type:
            case ChallengeType.HTTP_01:
                await validate_http01(
                    resolver, policy, ident.value, req.token, req.key_authorization, records
                )
            case ChallengeType.DNS_01:
                await validate_dns01(resolver, ident, req.key_authorization, records)
            case ChallengeType.TLS_ALPN_01:
                await validate_tlsalpn01(resolver, policy, ident, req.key_authorization, records)


def _check_request(req: ValidationRequest) -> None:
    """Defensive checks the RA should already guarantee (RFC 8555 §7.1.3, §8.1; RFC 8738 §7).

    Raises a ``malformed`` `AcmeProblem`.
    """
    ident = req.identifier
    if not _TOKEN.fullmatch(req.token):
        raise malformed("challenge token is not base64url")
    if not req.key_authorization.isascii() or not req.key_authorization.startswith(req.token + "."):
        raise malformed("key authorization does not belong to the challenge token")
    if ident.type is IdentifierType.IP:
        _check_ip_identifier(ident, req.challenge_type)
    elif ident.is_wildcard and req.challenge_type is not ChallengeType.DNS_01:
        raise malformed(f"a wildcard identifier cannot be validated with {req.challenge_type}")


def _check_ip_identifier(ident: Identifier, challenge_type: ChallengeType) -> None:
    if challenge_type is ChallengeType.DNS_01:
        raise malformed("dns-01 cannot validate an IP identifier (RFC 8738 §7)")
    try:
        ip_address(ident.value)
    except ValueError as exc:
        raise malformed(f"{ident.value!r} is not an IP address") from exc
