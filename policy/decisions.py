"""The decisions a tenant policy makes at newAccount, newOrder and finalize (RFC 8555 §7.3,
§7.4): a valid, normalised document (``certplane.policy.validation``) compiled into a
:class:`Policy`.

Decisions are pure: they take the request's facts and return every :class:`Violation`, each
naming the rule that refused (a pointer into the document) in a sentence a client can read.
An EAB section (``/eab/<kid>``) applies on top of the tenant's rules for the accounts bound with
that key: it can only refuse more. CEL rules (``certplane.policy.cel``) fail closed: a rule that
errors or runs out of time refuses the request (and an approval rule that does so matches).

Identifier matching (names are precondition-normalised, as ``parse_identifiers`` returns them):

* ``suffixes``: a name matches a suffix when it is the suffix or below it (label-aligned).
* ``names``: exact names; a wildcard entry only matches the same wildcard.
* ``ip_ranges``: an ``ip`` identifier matches when the network contains it.
* ``allow``, when present, is an allow list for every identifier type: an identifier must match
  an entry of its own type (so an ``allow`` with only ``suffixes`` refuses every IP address).
* ``deny`` also refuses a wildcard that *covers* a denied name: ``*.example.com`` stands for
  ``admin.example.com`` (RFC 6125 §6.4.3), so denying that name or suffix refuses the wildcard.
"""

from __future__ import annotations

import copy
import ipaddress
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certplane.policy.cel import CelEvaluationError, CelTimeout, CompiledRule, compile_rule
from certplane.policy.schema import DEFAULT_PROFILE, SCHEMA_NAME, WILDCARD_CHALLENGES, JsonObject
from certplane.policy.validation import pointer, validated


class UnknownProfile(LookupError):
    """The profile is not in the policy (the caller should have run ``check_order``)."""


# -- decisions: the values that cross the API --------------------------------------------------


@dataclass(frozen=True)
class Name:
    """An identifier of an order, normalised (``parse_identifiers``): ``type`` "dns" or "ip"."""

    type: str
    value: str

    @property
    def wildcard(self) -> bool:
        """A wildcard DNS name, "*.example.com" (RFC 8555 §7.1.3)."""
        return self.type == "dns" and self.value.startswith("*.")


@dataclass(frozen=True)
class RequestFacts:
    """Who asks: the account (not yet created at newAccount) and its EAB binding, if any."""

    account_id: str
    contact: tuple[str, ...]
    eab_kid: str | None
    eab_label: str | None
    profile: str = DEFAULT_PROFILE


@dataclass(frozen=True)
class Violation:
    """One refusal: ``rule`` is a JSON pointer into the deciding document; ``name`` the refused
    identifier, or None when the rule concerns the whole request."""

    rule: str
    detail: str
    name: Name | None = None


_FIXED_BITS = {"ed25519": 256, "ed448": 456}
_CURVES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}


@dataclass(frozen=True)
class CsrKey:
    """A CSR's key algorithm: "ec-p256", "ec-p384", "ec-p521", "rsa-<bits>", "ed25519", ..."""

    algorithm: str

    @property
    def type(self) -> str:
        """The family: "ec", "rsa", "ed25519", "dsa", ..."""
        return self.algorithm.partition("-")[0]

    @property
    def bits(self) -> int:
        """Key size in bits (0 when the algorithm does not say)."""
        size = self.algorithm.partition("-")[2].removeprefix("p")
        return int(size) if size.isdigit() else _FIXED_BITS.get(self.algorithm, 0)


def csr_key_of(public_key: object) -> CsrKey:
    """The :class:`CsrKey` of a ``cryptography`` public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return CsrKey(f"rsa-{public_key.key_size}")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        return CsrKey(_CURVES.get(curve, f"ec-{curve}"))
    if isinstance(public_key, dsa.DSAPublicKey):
        return CsrKey(f"dsa-{public_key.key_size}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return CsrKey("ed25519")
    if isinstance(public_key, ed448.Ed448PublicKey):
        return CsrKey("ed448")
    return CsrKey("unknown")


# -- decisions: compiled rules -----------------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _MatchSet:
    at: str  # pointer of the allow or deny object
    suffixes: tuple[str, ...]
    names: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, doc: Any, at: str) -> _MatchSet:
        networks = tuple(ipaddress.ip_network(n) for n in doc.get("ip_ranges", ()))
        return cls(at, tuple(doc.get("suffixes", ())), tuple(doc.get("names", ())), networks)


@dataclass(frozen=True)
class _NameRules:
    at: str  # "/identifiers" or "/eab/<kid>/identifiers"
    scope: str  # appended to details: "" or ' (EAB key "<kid>")'
    allow: _MatchSet | None
    deny: _MatchSet | None
    wildcards: bool | None  # None: this section does not restrict wildcards
    max_per_order: int | None

    @classmethod
    def of(cls, doc: Any, at: str, scope: str) -> _NameRules:
        allow, deny = doc.get("allow"), doc.get("deny")
        return cls(
            at,
            scope,
            None if allow is None else _MatchSet.of(allow, at + "/allow"),
            None if deny is None else _MatchSet.of(deny, at + "/deny"),
            doc.get("wildcards"),
            doc.get("max_per_order"),
        )


@dataclass(frozen=True)
class _CelRule:
    at: str
    rule_id: str
    stage: str
    message: str
    compiled: CompiledRule


@dataclass(frozen=True)
class _EabSection:
    names: _NameRules | None
    keys: tuple[str, ...] | None
    max_validity_days: int | None
    rules: tuple[_CelRule, ...]


@dataclass(frozen=True)
class _Profile:
    issuer: str | None
    validity_days: int | None
    description: str


@dataclass(frozen=True)
class _ApprovalRule:
    at: str
    wildcard: bool
    suffixes: tuple[str, ...]
    names: tuple[str, ...]
    cel: CompiledRule | None


def _cel_rules(doc: Any, at: str) -> tuple[_CelRule, ...]:
    return tuple(
        _CelRule(
            f"{at}/{index}",
            rule["id"],
            rule["at"],
            rule.get("message") or f'refused by rule "{rule["id"]}"',
            compile_rule(rule["expression"]),
        )
        for index, rule in enumerate(doc)
    )


def _eab_section(kid: str, doc: Any) -> _EabSection:
    base, scope = pointer("eab", kid), f' (EAB key "{kid}")'
    names = doc.get("identifiers")
    keys = doc.get("keys", {}).get("allowed")
    return _EabSection(
        None if names is None else _NameRules.of(names, base + "/identifiers", scope),
        None if keys is None else tuple(keys),
        doc.get("max_validity_days"),
        _cel_rules(doc.get("rules", []), base + "/rules"),
    )


def _approval_rule(index: int, doc: Any) -> _ApprovalRule:
    when = doc["when"]
    cel = when.get("cel")
    return _ApprovalRule(
        f"/approvals/rules/{index}",
        bool(when.get("wildcard", False)),
        tuple(when.get("suffixes", ())),
        tuple(when.get("names", ())),
        None if cel is None else compile_rule(cel),
    )


def compile_policy(doc: JsonObject) -> Policy:
    """The :class:`Policy` of a document.

    Precondition: ``doc`` is valid and normalised (``certplane.policy.validation.validated``).
    """
    profiles = {
        name: _Profile(p.get("issuer"), p.get("validity_days"), p.get("description", ""))
        for name, p in doc["profiles"].items()
    }
    return Policy(
        _document=doc,
        _names=_NameRules.of(doc["identifiers"], "/identifiers", ""),
        _eab={kid: _eab_section(kid, section) for kid, section in doc["eab"].items()},
        _rules=_cel_rules(doc["rules"], "/rules"),
        _approvals=tuple(_approval_rule(i, r) for i, r in enumerate(doc["approvals"]["rules"])),
        _profiles=profiles,
    )


# -- decisions: matching -----------------------------------------------------------------------


def _at_or_below(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _covers(wildcard: Name, name: str) -> bool:
    """A wildcard stands for every name exactly one label below its base (RFC 6125 §6.4.3)."""
    label, _, rest = name.partition(".")
    return wildcard.wildcard and label not in ("", "*") and rest == wildcard.value[2:]


def _suffix_touches(suffix: str, name: Name) -> bool:
    """Whether any name ``name`` stands for is at or below ``suffix``."""
    return _at_or_below(name.value, suffix) or _covers(name, suffix)


def _name_touches(listed: str, name: Name) -> bool:
    return listed == name.value or _covers(name, listed)


def _in_networks(name: Name, networks: Sequence[IPNetwork]) -> Iterator[int]:
    address = ipaddress.ip_address(name.value)
    return (index for index, network in enumerate(networks) if address in network)


def _deny_violations(deny: _MatchSet, name: Name, scope: str) -> Iterator[Violation]:
    if name.type == "ip":
        for index in _in_networks(name, deny.networks):
            detail = f'{name.value} is denied by IP range "{deny.networks[index]}"{scope}'
            yield Violation(f"{deny.at}/ip_ranges/{index}", detail, name)
        return
    for index, suffix in enumerate(deny.suffixes):
        if _suffix_touches(suffix, name):
            detail = f'{name.value} is denied by suffix "{suffix}"{scope}'
            yield Violation(f"{deny.at}/suffixes/{index}", detail, name)
    for index, listed in enumerate(deny.names):
        if _name_touches(listed, name):
            detail = f'{name.value} is denied by name "{listed}"{scope}'
            yield Violation(f"{deny.at}/names/{index}", detail, name)


def _allowed(allow: _MatchSet, name: Name) -> bool:
    if name.type == "ip":
        return any(True for _ in _in_networks(name, allow.networks))
    in_suffix = any(_at_or_below(name.value, suffix) for suffix in allow.suffixes)
    return in_suffix or name.value in allow.names


def _name_violations(rules: _NameRules, names: Sequence[Name]) -> Iterator[Violation]:
    if rules.max_per_order is not None and len(names) > rules.max_per_order:
        detail = f"the order has {len(names)} identifiers, more than {rules.max_per_order}"
        yield Violation(f"{rules.at}/max_per_order", detail + rules.scope)
    for name in names:
        if name.wildcard and rules.wildcards is False:
            detail = f"{name.value} is a wildcard and wildcards are not allowed{rules.scope}"
            yield Violation(f"{rules.at}/wildcards", detail, name)
        if rules.deny is not None:
            yield from _deny_violations(rules.deny, name, rules.scope)
        if rules.allow is not None and not _allowed(rules.allow, name):
            detail = f"{name.value} matches no entry of the allow list{rules.scope}"
            yield Violation(rules.allow.at, detail, name)


def _approval_matches(rule: _ApprovalRule, names: Sequence[Name], cel: _CelRun) -> bool:
    if rule.wildcard:
        return any(name.wildcard for name in names)
    if rule.suffixes:
        return any(_suffix_touches(s, n) for s in rule.suffixes for n in names if n.type == "dns")
    if rule.names:
        return any(_name_touches(listed, n) for listed in rule.names for n in names)
    return rule.cel is not None and cel.passes(rule.cel) is not False


# -- decisions: CEL ----------------------------------------------------------------------------


class _CelRun:
    """The CEL of one decision: one set of variables and one time budget for every rule."""

    def __init__(
        self, names: Sequence[Name], facts: RequestFacts, key: CsrKey | None, limit: float
    ) -> None:
        self.variables = _cel_variables(names, facts, key)
        self.limit = limit
        self._deadline = time.monotonic() + limit

    def passes(self, rule: CompiledRule) -> bool | str:
        """True or False, or why the rule could not decide (which refuses: fails closed)."""
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise CelTimeout
            return rule.evaluate(self.variables, time_limit=remaining)
        except CelTimeout:
            return f"did not finish within the {self.limit:g} s limit"
        except CelEvaluationError as error:
            return f"failed: {error}"

    def violations(self, rules: Sequence[_CelRule], stage: str) -> Iterator[Violation]:
        for rule in rules:
            if rule.stage != stage:
                continue
            outcome = self.passes(rule.compiled)
            if outcome is False:
                yield Violation(rule.at, rule.message)
            elif outcome is not True:
                yield Violation(rule.at, f'rule "{rule.rule_id}" {outcome}; refused (fails closed)')


def _cel_variables(
    names: Sequence[Name], facts: RequestFacts, key: CsrKey | None
) -> dict[str, Any]:
    """Exactly the variables ``certplane.policy.cel`` documents."""
    eab = None if facts.eab_kid is None else {"kid": facts.eab_kid, "label": facts.eab_label}
    csr_key = (
        None if key is None else {"algorithm": key.algorithm, "type": key.type, "bits": key.bits}
    )
    return {
        "identifiers": [{"type": n.type, "value": n.value, "wildcard": n.wildcard} for n in names],
        "account": {
            "id": facts.account_id,
            "contact": list(facts.contact),
            "eab_kid": facts.eab_kid,
        },
        "eab": eab,
        "csr_key": csr_key,
        "profile": facts.profile,
    }


def _mailto_domains(contact: str) -> list[str] | None:
    """The domains of a mailto: URI's addresses (RFC 6068), or None for another scheme."""
    scheme, colon, rest = contact.partition(":")
    if not colon or scheme.lower() != "mailto":
        return None
    addresses = unquote(rest.partition("?")[0]).split(",")
    return [address.rpartition("@")[2].strip().lower().removesuffix(".") for address in addresses]


# -- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A valid policy, compiled. Build it with ``certplane.policy.document.parse_policy`` or
    ``policy_from_json``, or :meth:`builtin`; every ``cel_time_limit`` is the budget, in
    seconds, of all the CEL one decision runs."""

    _document: JsonObject
    _names: _NameRules
    _eab: dict[str, _EabSection]
    _rules: tuple[_CelRule, ...]
    _approvals: tuple[_ApprovalRule, ...]
    _profiles: dict[str, _Profile]

    @classmethod
    def builtin(cls) -> Policy:
        """The policy of a tenant without one: no restriction, 90 days, 100 identifiers."""
        return compile_policy(validated({"schema": SCHEMA_NAME}))

    @property
    def document(self) -> JsonObject:
        """The normalised document (a copy): what is stored and shown."""
        return copy.deepcopy(self._document)

    @property
    def uses_cel(self) -> bool:
        """Whether a decision may evaluate CEL (then it may take up to its time limit)."""
        eab_rules = any(section.rules for section in self._eab.values())
        return bool(self._rules) or eab_rules or any(r.cel for r in self._approvals)

    def _eab_section(self, facts: RequestFacts) -> _EabSection | None:
        return None if facts.eab_kid is None else self._eab.get(facts.eab_kid)

    def check_order(
        self, names: Sequence[Name], facts: RequestFacts, *, cel_time_limit: float
    ) -> list[Violation]:
        """Every violation of a newOrder (RFC 8555 §7.4): identifier rules (one violation per
        refused identifier per rule), the profile, then CEL rules ``at: order``."""
        violations = list(_name_violations(self._names, names))
        violations += self._profile_violations(facts.profile)
        section = self._eab_section(facts)
        if section is not None and section.names is not None:
            violations += _name_violations(section.names, names)
        return violations + self._cel_violations(names, facts, None, "order", cel_time_limit)

    def check_finalize(
        self, names: Sequence[Name], facts: RequestFacts, key: CsrKey, *, cel_time_limit: float
    ) -> list[Violation]:
        """Every violation of a finalize (RFC 8555 §7.4): the CSR key, the profile (it may have
        gone since the order), then CEL rules ``at: finalize``."""
        violations = self._key_violations(key, self._document["keys"]["allowed"], "/keys/allowed")
        section = self._eab_section(facts)
        if section is not None and section.keys is not None:
            at = pointer("eab", facts.eab_kid or "", "keys", "allowed")
            violations += self._key_violations(key, section.keys, at)
        violations += self._profile_violations(facts.profile)
        return violations + self._cel_violations(names, facts, key, "finalize", cel_time_limit)

    def check_account(self, facts: RequestFacts, *, cel_time_limit: float) -> list[Violation]:
        """Every violation of a newAccount (RFC 8555 §7.3): contact rules, CEL ``at: account``
        (with an empty ``identifiers`` list)."""
        violations = self._contact_violations(facts.contact)
        return violations + self._cel_violations((), facts, None, "account", cel_time_limit)

    def approval_rule(
        self, names: Sequence[Name], facts: RequestFacts, *, cel_time_limit: float
    ) -> str | None:
        """The pointer of the first approval rule the order matches (a CEL condition that
        errors or times out matches), or None."""
        run = _CelRun(names, facts, None, cel_time_limit)
        return next((r.at for r in self._approvals if _approval_matches(r, names, run)), None)

    @property
    def approval_deadline(self) -> timedelta:
        return timedelta(hours=self._document["approvals"]["deadline_hours"])

    def challenge_types(self, name: Name) -> tuple[str, ...]:
        """The challenge types to offer, in the policy's order (RFC 8555 §8); a wildcard only
        ever gets dns-01 (§7.1.3)."""
        challenges = self._document["challenges"]
        if name.wildcard:
            return tuple(t for t in challenges["wildcard"] if t in WILDCARD_CHALLENGES)
        return tuple(challenges["ip" if name.type == "ip" else "dns"])

    def validity(self, profile: str, eab_kid: str | None) -> timedelta:
        """The lifetime: the profile's days or default_days, capped by max_days and the EAB
        key's max_validity_days. Raises :class:`UnknownProfile`."""
        validity = self._document["validity"]
        days = self._profile(profile).validity_days or validity["default_days"]
        days = min(days, validity["max_days"])
        section = None if eab_kid is None else self._eab.get(eab_kid)
        if section is not None and section.max_validity_days is not None:
            days = min(days, section.max_validity_days)
        return timedelta(days=days)

    def issuer_for(self, profile: str) -> str | None:
        """The issuer id of the profile (None: the tenant's default). Raises UnknownProfile."""
        return self._profile(profile).issuer

    @property
    def profiles(self) -> dict[str, str]:
        """Profile name -> description, for the directory's ``meta.profiles``."""
        return {name: profile.description for name, profile in self._profiles.items()}

    @property
    def renewal_window(self) -> tuple[float, float]:
        renewal = self._document["renewal"]
        return (renewal["window_start"], renewal["window_end"])

    def _profile(self, name: str) -> _Profile:
        try:
            return self._profiles[name]
        except KeyError:
            raise UnknownProfile(name) from None

    def _profile_violations(self, profile: str) -> list[Violation]:
        if profile in self._profiles:
            return []
        offered = ", ".join(sorted(self._profiles))
        return [Violation("/profiles", f'unknown profile "{profile}" (offered: {offered})')]

    @staticmethod
    def _key_violations(key: CsrKey, allowed: Sequence[str], at: str) -> list[Violation]:
        if key.algorithm in allowed:
            return []
        detail = f"certificate key {key.algorithm} is not allowed (allowed: {', '.join(allowed)})"
        return [Violation(at, detail)]

    def _contact_violations(self, contact: Sequence[str]) -> list[Violation]:
        accounts = self._document["accounts"]
        violations = []
        if accounts["require_contact"] and not contact:
            violations.append(Violation("/accounts/require_contact", "a contact is required"))
        allowed = accounts.get("contact_domains")
        for uri in contact if allowed is not None else ():
            domains = _mailto_domains(uri) or []
            if not all(any(_at_or_below(d, a) for a in allowed) for d in domains):
                detail = f'contact "{uri}" is not at an allowed domain ({", ".join(allowed)})'
                violations.append(Violation("/accounts/contact_domains", detail))
        return violations

    def _cel_violations(
        self,
        names: Sequence[Name],
        facts: RequestFacts,
        key: CsrKey | None,
        stage: str,
        limit: float,
    ) -> list[Violation]:
        section = self._eab_section(facts)
        rules = self._rules + (section.rules if section is not None else ())
        if not any(rule.stage == stage for rule in rules):
            return []
        return list(_CelRun(names, facts, key, limit).violations(rules, stage))
