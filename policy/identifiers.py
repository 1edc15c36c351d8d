"""ACME identifiers: well-formedness, normalisation, tenant name policy (RFC 8555 §7.1.4, RFC 8738).

Two steps, kept apart on purpose (Boulder's ``WellFormedIdentifiers`` and ``WillingToIssue``):

* :func:`parse_identifiers` decides whether a newOrder ``identifiers`` array is *well formed* and
  returns normalised :class:`Identifier` values, or raises :class:`IdentifierRejections` carrying
  one :class:`Rejection` per bad entry (malformed / unsupportedIdentifier).
* :meth:`NamePolicy.check` decides whether a tenant is *willing* to issue for well-formed
  identifiers and names the rule behind every refusal (rejectedIdentifier).

Both report every problem, never only the first (ARCHITECTURE.md §7).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import idna


class IdentifierType(StrEnum):
    DNS = "dns"
    IP = "ip"


@dataclass(frozen=True, order=True)
class Identifier:
    """An ACME identifier (RFC 8555 §9.7.7, RFC 8738), already normalised."""

    type: IdentifierType
    value: str

    @property
    def is_wildcard(self) -> bool:
        return self.type is IdentifierType.DNS and self.value.startswith("*.")

    @property
    def base_domain(self) -> str:
        """The name an authorization covers: a wildcard's authorization is for its base."""
        return self.value[2:] if self.is_wildcard else self.value

    def to_json(self) -> dict[str, str]:
        return {"type": self.type.value, "value": self.value}


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_DNS_NAME_LENGTH = 253  # RFC 1035 §2.3.4, presentation form without the root dot
MAX_LABEL_LENGTH = 63
_LDH_LABEL = re.compile(r"[a-z0-9-]+")

# NOTE(reserved): names the platform never issues for, whatever a tenant's policy says. Each entry
# is a suffix rule (see NamePolicy): ".invalid" is RFC 6761 §6.4, ".arpa" is infrastructure
# (RFC 3172). ".localhost" is deliberately absent: the demo issues for it.
RESERVED_SUFFIXES: tuple[str, ...] = (".invalid", ".arpa")


class RejectionKind(StrEnum):
    """Why an identifier was refused; the values are the ACME error types (RFC 8555 §6.7)."""

    MALFORMED = "malformed"
    REJECTED = "rejectedIdentifier"
    UNSUPPORTED = "unsupportedIdentifier"


@dataclass(frozen=True)
class Rejection:
    """One refused identifier, ready to become a subproblem (RFC 8555 §6.7.1).

    ``identifier_json`` echoes the identifier as the client sent it, or is ``None`` when there is
    nothing well-typed to echo (the entry was not an object with string ``type`` and ``value``, or
    the problem concerns the whole array).
    """

    identifier_json: dict[str, str] | None
    kind: RejectionKind
    detail: str


class IdentifierRejections(Exception):
    """Raised by :func:`parse_identifiers` with every problem found."""

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        self.rejections: tuple[Rejection, ...] = tuple(rejections)
        super().__init__(f"{len(self.rejections)} identifier problem(s)")


class _BadIdentifier(Exception):
    """Internal: one entry is not acceptable; the caller attaches the echoed identifier."""

    def __init__(self, kind: RejectionKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _malformed(detail: str) -> _BadIdentifier:
    return _BadIdentifier(RejectionKind.MALFORMED, detail)


# -- parsing -----------------------------------------------------------------------------------


def parse_identifiers(raw: object, *, max_identifiers: int = 100) -> list[Identifier]:
    """Parse and normalise a newOrder ``identifiers`` array (RFC 8555 §7.4, RFC 8738 §3).

    Returns the identifiers in the client's order. Raises :class:`IdentifierRejections` with one
    rejection per bad entry, including every duplicate after normalisation; an array-level problem
    (not an array, empty, more than ``max_identifiers``) is a single rejection.
    """
    items = _check_array(raw, max_identifiers)
    parsed: list[Identifier] = []
    rejections: list[Rejection] = []
    first_index: dict[Identifier, int] = {}
    for index, item in enumerate(items):
        try:
            ident = _parse_one(index, item)
        except _BadIdentifier as bad:
            rejections.append(Rejection(_echo(item), bad.kind, bad.detail))
            continue
        if ident in first_index:
            detail = f"duplicate of identifiers[{first_index[ident]}] after normalisation"
            rejections.append(Rejection(_echo(item), RejectionKind.MALFORMED, detail))
            continue
        first_index[ident] = index
        parsed.append(ident)
    if rejections:
        raise IdentifierRejections(rejections)
    return parsed


def _check_array(raw: object, max_identifiers: int) -> list[object]:
    """The array itself: a non-empty JSON array of at most ``max_identifiers`` entries."""
    if not isinstance(raw, list):
        detail = "identifiers must be an array"
    elif not raw:
        detail = "identifiers must not be empty"
    elif len(raw) > max_identifiers:
        detail = f"too many identifiers: {len(raw)} > {max_identifiers}"
    else:
        return raw
    raise IdentifierRejections([Rejection(None, RejectionKind.MALFORMED, detail)])


def _echo(item: object) -> dict[str, str] | None:
    """The client's identifier as sent, when it has string ``type`` and ``value``."""
    if isinstance(item, dict):
        type_, value = item.get("type"), item.get("value")
        if isinstance(type_, str) and isinstance(value, str):
            return {"type": type_, "value": value}
    return None


def _parse_one(index: int, item: object) -> Identifier:
    """One identifier object: exactly string ``type`` and ``value`` (RFC 8555 §9.7.7)."""
    if not isinstance(item, dict):
        raise _malformed(f"identifiers[{index}] must be an object")
    if set(item) != {"type", "value"}:
        raise _malformed(f"identifiers[{index}] must have exactly the members 'type' and 'value'")
    type_, value = item["type"], item["value"]
    if not isinstance(type_, str) or not isinstance(value, str):
        raise _malformed(f"identifiers[{index}]: 'type' and 'value' must be strings")
    if type_ == IdentifierType.DNS:
        return Identifier(IdentifierType.DNS, _normalize_dns_name(value))
    if type_ == IdentifierType.IP:
        return Identifier(IdentifierType.IP, _normalize_ip(value))
    raise _BadIdentifier(
        RejectionKind.UNSUPPORTED, "unsupported identifier type: supported are 'dns' and 'ip'"
    )


# -- dns names ---------------------------------------------------------------------------------


def _normalize_dns_name(value: str) -> str:
    """Lowercase, drop one trailing dot and check a DNS identifier (RFC 1123 §2.1, RFC 5891).

    A wildcard is allowed only as the whole leftmost label (RFC 8555 §7.1.3) over a base of at
    least two labels. Raises ``_BadIdentifier`` (malformed) naming the first problem.
    """
    if not value.isascii():
        raise _malformed("internationalized names must be sent as A-labels (xn--), RFC 5891 §4")
    name = value.lower().removesuffix(".")
    _refuse_ip_literal(name)
    if len(name) > MAX_DNS_NAME_LENGTH:
        raise _malformed(f"DNS name longer than {MAX_DNS_NAME_LENGTH} characters")
    labels = name.split(".")
    base = labels[1:] if labels[0] == "*" else labels
    for label in base:
        _check_label(label)
    if len(base) < 2:
        raise _malformed("DNS name must have at least two labels (wildcard base included)")
    if base[-1].isdigit():
        raise _malformed("DNS name has an all-numeric top-level label")
    return name


def _refuse_ip_literal(name: str) -> None:
    """An address is never a DNS identifier: it has its own type (RFC 8738 §3)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return
    raise _malformed("IP address literal under type 'dns': use type 'ip' (RFC 8738)")


def _check_label(label: str) -> None:
    """One lowercase label: LDH, 1 to 63 octets, no edge hyphen, R-LDH only as A-label."""
    if not label:
        raise _malformed("DNS name has an empty label")
    if len(label) > MAX_LABEL_LENGTH:
        raise _malformed(f"DNS label longer than {MAX_LABEL_LENGTH} characters")
    if "*" in label:
        raise _malformed("wildcard '*' is allowed only as the whole leftmost label")
    if not _LDH_LABEL.fullmatch(label):
        raise _malformed("DNS label has a character other than letters, digits and hyphen")
    if label.startswith("-") or label.endswith("-"):
        raise _malformed("DNS label starts or ends with a hyphen")
    if label[2:4] == "--":
        _check_reserved_ldh(label)


def _check_reserved_ldh(label: str) -> None:
    """``??--`` labels are reserved; only ``xn--`` A-labels that round-trip (RFC 5891 §4.2.3.1)."""
    if not label.startswith("xn--"):
        raise _malformed("DNS label has '--' in positions 3-4 but is not an xn-- A-label")
    try:
        round_trip = idna.alabel(idna.ulabel(label)).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        round_trip = ""
    if round_trip != label:
        raise _malformed(f"DNS label {label!r} is not a valid IDNA A-label")


# -- ip addresses ------------------------------------------------------------------------------


def _normalize_ip(value: str) -> str:
    """Canonical text of an IPv4 or IPv6 address (RFC 8738 §3; RFC 5952 for IPv6).

    Zone identifiers (RFC 6874) and IPv4-mapped IPv6 addresses are refused: the first is local to
    a host, the second names an IPv4 address that must be requested as such.
    """
    if "%" in value:
        raise _malformed("IP address zone identifiers are not allowed")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _malformed("not a valid IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise _malformed("IPv4-mapped IPv6 address: request the IPv4 address instead")
    return address.compressed


# -- tenant name policy ------------------------------------------------------------------------


def _zone(rule: str) -> str:
    return rule.removeprefix(".")


def _rule_matches(rule: str, name: str) -> bool:
    """Suffix rule semantics: ``example.net`` matches that name and every name below it,
    ``.example.net`` only names strictly below it. Matching is label-aligned."""
    zone = _zone(rule)
    below = name.endswith("." + zone)
    return below if rule.startswith(".") else below or name == zone


def _rule_allows(rule: str, ident: Identifier) -> bool:
    """Whether an allow rule covers *every* name the identifier stands for."""
    if not ident.is_wildcard:
        return _rule_matches(rule, ident.value)
    zone, base = _zone(rule), ident.base_domain
    return base == zone or base.endswith("." + zone)


def _rule_touches(rule: str, ident: Identifier) -> bool:
    """Whether a deny rule matches *any* name the identifier stands for.

    ``*.example.net`` stands for every name one label below ``example.net``; so it is denied by
    ``.example.net`` and by ``a.example.net`` (which it covers), not by ``.a.example.net``.
    """
    if not ident.is_wildcard:
        return _rule_matches(rule, ident.value)
    zone, base = _zone(rule), ident.base_domain
    if base == zone or base.endswith("." + zone):
        return True
    one_below = zone.endswith("." + base) and zone.count(".") == base.count(".") + 1
    return one_below and not rule.startswith(".")


def _validate_rules(field_name: str, rules: Sequence[str]) -> None:
    """Fail fast on a bad policy document: each rule is a lowercase name, optional leading dot."""
    for index, rule in enumerate(rules):
        try:
            if rule != rule.lower() or not rule.isascii():
                raise _malformed("must be lowercase ASCII")
            for label in _zone(rule).split("."):
                _check_label(label)
        except _BadIdentifier as bad:
            raise ValueError(f"{field_name}[{index}] ({rule!r}): {bad.detail}") from None


@dataclass(frozen=True)
class NamePolicy:
    """A tenant's willingness to issue (Boulder's ``WillingToIssue``), as data.

    Suffix rules use :func:`_rule_matches` semantics. ``None`` for an allow list means
    "unrestricted"; an empty tuple allows nothing. :data:`RESERVED_SUFFIXES` always apply.
    """

    allowed_suffixes: tuple[str, ...] | None = None
    denied_suffixes: tuple[str, ...] = ()
    allow_wildcards: bool = True
    allow_ip: bool = True
    allowed_ip_networks: tuple[IPNetwork, ...] | None = None

    def __post_init__(self) -> None:
        _validate_rules("allowed_suffixes", self.allowed_suffixes or ())
        _validate_rules("denied_suffixes", self.denied_suffixes)

    def check(self, identifiers: Iterable[Identifier]) -> list[Rejection]:
        """One rejectedIdentifier per refused identifier, naming the first rule that refused it."""
        rejections = []
        for ident in identifiers:
            rule = self._refusing_rule(ident)
            if rule is not None:
                detail = f"denied by rule {rule}"
                rejections.append(Rejection(ident.to_json(), RejectionKind.REJECTED, detail))
        return rejections

    def _refusing_rule(self, ident: Identifier) -> str | None:
        if ident.type is IdentifierType.IP:
            return self._refusing_ip_rule(ipaddress.ip_address(ident.value))
        return self._refusing_dns_rule(ident)

    def _refusing_dns_rule(self, ident: Identifier) -> str | None:
        """Order: reserved names, wildcards, deny list, allow list."""
        for index, rule in enumerate(RESERVED_SUFFIXES):
            if _rule_touches(rule, ident):
                return f"reserved_suffixes[{index}] ({rule!r})"
        if ident.is_wildcard and not self.allow_wildcards:
            return "allow_wildcards (false)"
        for index, rule in enumerate(self.denied_suffixes):
            if _rule_touches(rule, ident):
                return f"denied_suffixes[{index}] ({rule!r})"
        allowed = self.allowed_suffixes
        if allowed is not None and not any(_rule_allows(rule, ident) for rule in allowed):
            return "allowed_suffixes (no rule matches)"
        return None

    def _refusing_ip_rule(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> str | None:
        if not self.allow_ip:
            return "allow_ip (false)"
        networks = self.allowed_ip_networks
        if networks is not None and not any(address in network for network in networks):
            return "allowed_ip_networks (no network contains the address)"
        return None
