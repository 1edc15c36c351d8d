"""CAA checking (RFC 8659) with the account and method bindings of RFC 8657.

1. The relevant RRset is the first non-empty CAA RRset found climbing from the name (a wildcard's
   base name) towards the TLD, the root excluded (RFC 8659 §3). CNAMEs are followed by the
   resolver; a failed lookup is never permission (fail closed, ``dns`` problem).
2. A critical property with a tag this CA does not know forbids issuance (§4.1).
3. For a wildcard, ``issuewild`` properties rule when there are any, else ``issue`` (§4.3); for
   other names ``issuewild`` is ignored. No property of the kind that rules: issuance allowed.
4. A property permits issuance when its issuer-domain-name is one of the tenant's CA identities
   (case-insensitive) and its parameters hold: ``accounturi`` equals the account URI (RFC 8657
   §3), ``validationmethods`` lists the method used (RFC 8657 §4). Other parameters are ignored.
   A value that does not parse (§4.2 grammar), or repeats a parameter, permits nothing.

IP identifiers have no CAA (RFC 8738 defines none; Boulder skips them too): always allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import ChallengeType, Identifier, IdentifierType
from certplane.server.va.api import CAARecord, DnsError, Resolver

# Tags whose meaning this CA knows (RFC 8659 §4.2-4.4, RFC 9495 issuemail); a critical record with
# any other tag forbids issuance.
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail"})

_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PARAMETER = re.compile(rf"({_LABEL})[ \t]*=[ \t]*([\x21-\x3a\x3c-\x7e]*)")
_WSP = " \t"


@dataclass(frozen=True)
class IssueValue:
    """A parsed ``issue``/``issuewild`` value: issuer ("" permits no CA) and parameters."""

    issuer: str
    parameters: Mapping[str, str]


def parse_issue_value(raw: str) -> IssueValue | None:
    """Parse per RFC 8659 §4.2; None when malformed. Parameter tags are lower-cased."""
    head, _, tail = raw.partition(";")
    issuer = head.strip(_WSP)
    if issuer and not _DOMAIN.fullmatch(issuer):
        return None
    parameters: dict[str, str] = {}
    for part in (p.strip(_WSP) for p in tail.split(";")):
        if not part:
            continue
        match = _PARAMETER.fullmatch(part)
        if match is None or match[1].lower() in parameters:
            return None
        parameters[match[1].lower()] = match[2]
    return IssueValue(issuer.lower(), parameters)


def permits(
    value: IssueValue,
    identities: frozenset[str],
    account_uri: str,
    method: ChallengeType,
) -> bool:
    """Whether one parsed property authorizes this CA, account and method (RFC 8657 §3-4)."""
    if value.issuer not in identities:
        return False
    bound_account = value.parameters.get("accounturi")
    if bound_account is not None and bound_account != account_uri:
        return False
    methods = value.parameters.get("validationmethods")
    return methods is None or method.value in methods.split(",")


def refusal_reason(
    rrset: Iterable[CAARecord],
    *,
    wildcard: bool,
    identities: frozenset[str],
    account_uri: str,
    method: ChallengeType,
) -> str | None:
    """Why the relevant RRset forbids issuance, or None when it allows it (steps 2-4 above)."""
    records = list(rrset)
    for record in records:
        if record.critical and record.tag.lower() not in KNOWN_TAGS:
            return f"unknown critical property {record.tag!r}"
    issue = [r for r in records if r.tag.lower() == "issue"]
    issuewild = [r for r in records if r.tag.lower() == "issuewild"]
    ruling, kind = (issuewild, "issuewild") if wildcard and issuewild else (issue, "issue")
    if not ruling:
        return None
    for record in ruling:
        value = parse_issue_value(record.value)
        if value is not None and permits(value, identities, account_uri, method):
            return None
    return f"no {kind} property authorizes this CA for this account and method"


async def relevant_rrset(resolver: Resolver, name: str) -> tuple[str, list[CAARecord]]:
    """The first non-empty CAA RRset from ``name`` up to its TLD (RFC 8659 §3); raises
    `DnsError`. Returns ("", []) when there is none."""
    labels = name.rstrip(".").split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        rrset = await resolver.resolve_caa(candidate)
        if rrset:
            return candidate, rrset
    return "", []


async def check_caa(
    resolver: Resolver,
    identifier: Identifier,
    account_uri: str,
    method: ChallengeType,
    caa_identities: Iterable[str],
) -> AcmeProblem | None:
    """None when CAA allows issuance; otherwise a ``caa`` (refused) or ``dns`` problem."""
    if identifier.type is not IdentifierType.DNS:
        return None
    identities = frozenset(i.lower().rstrip(".") for i in caa_identities)
    name = identifier.base_domain
    try:
        found_at, rrset = await relevant_rrset(resolver, name)
    except DnsError as exc:
        return AcmeProblem(ProblemType.DNS, f"While checking CAA for {name}: {exc.detail}")
    reason = refusal_reason(
        rrset,
        wildcard=identifier.is_wildcard,
        identities=identities,
        account_uri=account_uri,
        method=method,
    )
    if reason is None:
        return None
    return AcmeProblem(
        ProblemType.CAA,
        f"CAA record for {found_at} prevents issuance for {identifier.value} ({reason})",
    )
