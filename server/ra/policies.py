"""Tenant policies: versions, activation (with maker-checker for sensitive fields), and the
decisions they make at newAccount, newOrder and finalize (RFC 8555 §7.3, §7.4).

Every refusal names the rule (a JSON pointer into the document) and the policy version, in the
problem detail and in a ``policy.decision`` event. The refused request's transaction rolls back,
so that event is written right after, in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certplane.policy.document import (
    Name,
    Policy,
    PolicyInvalid,
    PolicyIssue,
    RequestFacts,
    Violation,
    parse_policy,
    pointer,
    policy_from_json,
    sensitive_changes,
)
from certplane.server.errors import AcmeProblem, ProblemType, Subproblem
from certplane.server.model import Account, EventType, Identifier
from certplane.server.storage.repos.policies import PolicyStatus, PolicyVersion
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx, UnitOfWork

log = logging.getLogger(__name__)

BUILTIN = "builtin"


@dataclass(frozen=True)
class ActivePolicy:
    """The policy in force and its version (None: the built-in one)."""

    version: int | None
    policy: Policy

    @property
    def label(self) -> str:
        return BUILTIN if self.version is None else f"v{self.version}"


@dataclass(frozen=True)
class Activation:
    version: PolicyVersion
    # Sensitive fields the change touches: non-empty means a second tenant-admin must approve.
    sensitive: tuple[str, ...]


class PolicyVersionConflict(Exception):
    """The version is not in a state that allows the change (the message says which)."""


def names_of(identifiers: Sequence[Identifier]) -> list[Name]:
    return [Name(i.type.value, i.value) for i in identifiers]


def facts_of(account: Account, eab_label: str | None, profile: str = "default") -> RequestFacts:
    return RequestFacts(
        account_id=account.id,
        contact=tuple(account.contact),
        eab_kid=account.eab_kid,
        eab_label=eab_label,
        profile=profile,
    )


async def eab_facts(tx: TenantTx, account: Account) -> tuple[str | None, str]:
    """The label of the account's EAB key and the principal who created it (maker-checker)."""
    if account.eab_kid is None:
        return None, ""
    key = await tx.eab.get(account.eab_kid)
    if key is None:
        return None, ""
    return key.label, key.created_by


class PolicyService:
    def __init__(self, uow: UnitOfWork, cel_time_limit: float) -> None:
        self._uow = uow
        self._cel_time_limit = cel_time_limit
        self._parsed: dict[tuple[str, int], Policy] = {}
        self._builtin = Policy.builtin()

    # --- what is in force -------------------------------------------------------------------

    async def current(self, tx: TenantTx) -> ActivePolicy:
        """The active version, read in ``tx`` (so a just-activated policy applies at once)."""
        row = await tx.policies.active()
        if row is None:
            return ActivePolicy(None, self._builtin)
        key = (tx.scope.tenant_id, row.version)
        policy = self._parsed.get(key)
        if policy is None:
            policy = self._parsed[key] = policy_from_json(row.document)
        return ActivePolicy(row.version, policy)

    async def profiles(self, scope: TenantScope, version: int | None) -> dict[str, str] | None:
        """The profiles a tenant's policy offers (name -> description), for the directory's
        ``meta.profiles`` (draft-ietf-acme-profiles); None under the built-in policy."""
        if version is None:
            return None
        policy = self._parsed.get((scope.tenant_id, version))
        if policy is None:
            async with self._uow.begin(scope, write=False) as tx:
                stored = await tx.policies.get(version)
            if stored is None:
                return None
            policy = self._parsed[(scope.tenant_id, version)] = policy_from_json(stored.document)
        return dict(policy.profiles)

    async def run(self, active: ActivePolicy, decide: Any, *args: Any) -> Any:
        """Run a decision; one that may evaluate CEL runs in a thread (its time limit holds)."""
        kwargs = {"cel_time_limit": self._cel_time_limit}
        if active.policy.uses_cel:
            return await asyncio.to_thread(decide, *args, **kwargs)
        return decide(*args, **kwargs)

    # --- versions -----------------------------------------------------------------------------

    @staticmethod
    def parse(source: str, media_type: str | None) -> Policy:
        """Raises PolicyInvalid with every offending field as a JSON pointer."""
        return parse_policy(source, media_type=media_type)

    async def add_version(
        self, tx: TenantTx, source: str, media_type: str | None, comment: str, actor: str,
        now: datetime,
    ) -> PolicyVersion:  # fmt: skip
        policy = self.parse(source, media_type)
        await _check_issuers(tx, policy)
        version = await tx.policies.add(source, policy.document, comment, actor, now)
        await tx.events.append(
            EventType.POLICY_CREATED,
            object_type="policy",
            object_id=str(version.version),
            actor=actor,
            now=now,
            version=version.version,
        )
        return version

    async def request_activation(
        self, tx: TenantTx, version_number: int, actor: str, now: datetime
    ) -> Activation:
        """Activate a draft now, or, when it changes sensitive fields, mark it pending a second
        tenant-admin's approval (the caller creates the approval)."""
        version = await tx.policies.get(version_number)
        if version is None:
            raise LookupError(f"policy version {version_number}")
        if version.status is not PolicyStatus.DRAFT:
            raise PolicyVersionConflict(
                f"policy version {version_number} is {version.status.value}: only a draft can "
                "be activated"
            )
        current = await self.current(tx)
        sensitive = tuple(sensitive_changes(current.policy, policy_from_json(version.document)))
        if sensitive:
            await tx.policies.move(version_number, (PolicyStatus.DRAFT,), PolicyStatus.PENDING)
            pending = await tx.policies.get(version_number)
            assert pending is not None
            return Activation(pending, sensitive)
        await self.activate(tx, version_number, (PolicyStatus.DRAFT,), actor, now)
        active = await tx.policies.get(version_number)
        assert active is not None
        return Activation(active, ())

    async def activate(
        self,
        tx: TenantTx,
        version_number: int,
        from_: tuple[PolicyStatus, ...],
        actor: str,
        now: datetime,
    ) -> None:
        """Make the version the one in force; the previous one is superseded."""
        current = await tx.policies.active()
        if not await tx.policies.move(version_number, from_, PolicyStatus.ACTIVE, activated_at=now):
            raise PolicyVersionConflict(f"policy version {version_number} cannot be activated")
        if current is not None and current.version != version_number:
            await tx.policies.move(current.version, (PolicyStatus.ACTIVE,), PolicyStatus.SUPERSEDED)
        await tx.policies.point_tenant_at(version_number)
        tx.after_commit(self._uow.tenants.invalidate)
        await tx.events.append(
            EventType.POLICY_ACTIVATED,
            object_type="policy",
            object_id=str(version_number),
            actor=actor,
            now=now,
            version=version_number,
            previous=None if current is None else current.version,
        )

    async def reject_pending(
        self, tx: TenantTx, version_number: int, actor: str, now: datetime, reason: str
    ) -> None:
        await tx.policies.move(version_number, (PolicyStatus.PENDING,), PolicyStatus.REJECTED)
        await tx.events.append(
            EventType.POLICY_REJECTED,
            object_type="policy",
            object_id=str(version_number),
            actor=actor,
            now=now,
            reason=reason,
        )

    # --- decisions ------------------------------------------------------------------------------

    async def refuse(
        self,
        tx: TenantTx,
        active: ActivePolicy,
        stage: str,
        violations: Sequence[Violation],
        problem: AcmeProblem,
        *,
        object_type: str,
        object_id: str,
        actor: str,
        now: datetime,
    ) -> AcmeProblem:
        """The problem to raise; the ``policy.decision`` event is written once ``tx`` rolled
        back (the refusal undoes everything else the request did)."""
        data = {
            "outcome": "refused",
            "stage": stage,
            "policy_version": active.version,
            "rules": sorted({v.rule for v in violations}),
            "details": [v.detail for v in violations][:20],
        }
        scope = tx.scope

        async def record() -> None:
            async with self._uow.begin(scope) as record_tx:
                await record_tx.events.append(
                    EventType.POLICY_DECISION,
                    object_type=object_type,
                    object_id=object_id,
                    actor=actor,
                    now=now,
                    **data,
                )

        tx.after_rollback(record)
        return problem


async def _check_issuers(tx: TenantTx, policy: Policy) -> None:
    """Every issuer a profile maps to is an active issuer of this tenant (the pure check of the
    document cannot know the tenant's issuers)."""
    issues = []
    for name in sorted(policy.profiles):
        issuer_id = policy.issuer_for(name)
        if issuer_id is None:
            continue
        record = await tx.issuers.get(issuer_id)
        if record is None or record.status != "active":
            issues.append(
                PolicyIssue(
                    pointer("profiles", name, "issuer"),
                    f"{issuer_id!r} is not an active issuer of this tenant",
                )
            )
    if issues:
        raise PolicyInvalid(issues)


def violation_detail(active: ActivePolicy, violation: Violation) -> str:
    return f"{violation.detail} (policy {active.label}, rule {violation.rule})"


def order_problem(active: ActivePolicy, violations: Sequence[Violation]) -> AcmeProblem:
    """rejectedIdentifier with one subproblem per refused identifier (RFC 8555 §6.7.1)."""
    subs = tuple(
        Subproblem(
            ProblemType.REJECTED_IDENTIFIER,
            violation_detail(active, v),
            {"type": v.name.type, "value": v.name.value},
        )
        for v in violations
        if v.name is not None
    )
    general = [violation_detail(active, v) for v in violations if v.name is None]
    lines = general + [s.detail for s in subs]
    count = len(violations)
    detail = f"refused by tenant policy {active.label} ({count} rule violation"
    detail += "s" if count != 1 else ""
    detail += "): " + "; ".join(lines[:3])
    return AcmeProblem(ProblemType.REJECTED_IDENTIFIER, detail, subproblems=subs)


def finalize_problem(active: ActivePolicy, violations: Sequence[Violation]) -> AcmeProblem:
    """badCSR (RFC 8555 §7.4): the CSR's key or request is outside the tenant policy."""
    lines = "; ".join(violation_detail(active, v) for v in violations[:3])
    return AcmeProblem(ProblemType.BAD_CSR, f"refused by tenant policy {active.label}: {lines}")


def account_problem(active: ActivePolicy, violations: Sequence[Violation]) -> AcmeProblem:
    """invalidContact for contact rules (RFC 8555 §7.3), unauthorized for the others."""
    lines = "; ".join(violation_detail(active, v) for v in violations[:3])
    contact_only = all(v.rule.startswith("/accounts/") for v in violations)
    ptype = ProblemType.INVALID_CONTACT if contact_only else ProblemType.UNAUTHORIZED
    return AcmeProblem(ptype, f"refused by tenant policy {active.label}: {lines}")
