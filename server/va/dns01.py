"""dns-01 (RFC 8555 §8.4).

Look up TXT at ``_acme-challenge.{name}`` (a wildcard's name without ``*.``), CNAMEs followed by
the resolver, and accept when any record equals base64url(SHA-256(key authorization)) without
padding. TXT records are public, but the detail reports only how many were seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import Identifier
from certplane.server.va.api import DnsError, Resolver, ValidationRecord

CHALLENGE_LABEL = "_acme-challenge"


def expected_txt_value(key_authorization: str) -> str:
    """base64url without padding of SHA-256(key authorization) (§8.4)."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def challenge_name(identifier: Identifier) -> str:
    """``_acme-challenge.`` + the authorization's base domain (§8.4, §7.1.3 for wildcards)."""
    return f"{CHALLENGE_LABEL}.{identifier.base_domain}"


async def validate_dns01(
    resolver: Resolver,
    identifier: Identifier,
    key_authorization: str,
    records: list[ValidationRecord],
) -> None:
    """Raise `AcmeProblem` unless a TXT record at the challenge name holds the digest."""
    name = challenge_name(identifier)
    records.append({"hostname": name})
    try:
        values = await resolver.resolve_txt(name)
    except DnsError as exc:
        raise AcmeProblem(ProblemType.DNS, exc.detail) from exc
    expected = expected_txt_value(key_authorization).encode("ascii")
    if any(hmac.compare_digest(v.encode("utf-8"), expected) for v in values):
        return
    if not values:
        raise AcmeProblem(ProblemType.UNAUTHORIZED, f"No TXT record found at {name}")
    raise AcmeProblem(
        ProblemType.UNAUTHORIZED,
        f"Incorrect TXT record found at {name}: none of the {len(values)} record(s) seen "
        "matches the key authorization digest",
    )
