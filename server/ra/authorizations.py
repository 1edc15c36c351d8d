"""Authorization and challenge use cases (RFC 8555 §7.5, §7.5.1, §7.5.2, §8)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from certplane.server.errors import malformed, not_found
from certplane.server.model import (
    Account,
    Authorization,
    AuthzStatus,
    Challenge,
    ChallengeStatus,
    EventType,
    Identifier,
)
from certplane.server.ra.deps import RADeps
from certplane.server.ra.limits import consume, identifier_subject
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx
from certplane.server.va.api import ValidationRequest, ValidationResult

log = logging.getLogger(__name__)

VALIDATE_JOB = "validate"
VALIDATION_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class AuthzState:
    authz: Authorization
    status: AuthzStatus


def key_authorization(token: str, account_thumbprint: str) -> str:
    """``token || '.' || base64url(Thumbprint(accountKey))`` (RFC 8555 §8.1)."""
    return f"{token}.{account_thumbprint}"


class AuthorizationService:
    def __init__(self, deps: RADeps, va: Any) -> None:
        self._deps = deps
        self._va = va

    async def get_authz(self, tx: TenantTx, account: Account, authz_id: str) -> AuthzState:
        authz = await _owned_authz(tx, account, authz_id)
        return AuthzState(authz, authz.status(self._deps.clock.now()))

    async def deactivate(self, tx: TenantTx, account: Account, authz_id: str) -> AuthzState:
        """Client deactivation: only pending or valid authorizations (§7.5.2)."""
        authz = await _owned_authz(tx, account, authz_id)
        now = self._deps.clock.now()
        if authz.status(now) not in (AuthzStatus.PENDING, AuthzStatus.VALID):
            raise malformed(f"authorization is {authz.status(now)}: it cannot be deactivated")
        frm = (AuthzStatus.PENDING, AuthzStatus.VALID)
        await tx.authzs.transition(authz.id, frm, AuthzStatus.DEACTIVATED)
        await tx.events.append(
            EventType.AUTHZ_DEACTIVATED,
            object_type="authz",
            object_id=authz.id,
            actor=f"account:{account.id}",
            now=now,
        )
        updated = await _owned_authz(tx, account, authz_id)
        return AuthzState(updated, updated.status(now))

    async def get_challenge(self, tx: TenantTx, account: Account, challenge_id: str) -> Challenge:
        challenge, _ = await _owned_challenge(tx, account, challenge_id)
        return challenge

    async def respond(self, tx: TenantTx, account: Account, challenge_id: str) -> Challenge:
        """The client says it is ready (§7.5.1): start validation once, answer at once."""
        challenge, authz = await _owned_challenge(tx, account, challenge_id)
        now = self._deps.clock.now()
        startable = challenge.status is ChallengeStatus.PENDING
        if not startable or authz.status(now) is not AuthzStatus.PENDING:
            return challenge
        started = await self._start(tx, account, challenge, now)
        job_id = await tx.jobs.enqueue(
            VALIDATE_JOB,
            challenge_id,
            now=now,
            locked_until=now + VALIDATION_LEASE,
            deadline=now + VALIDATION_LEASE,
        )
        found = (started, self._request_for(tx.scope, authz, started, account))
        scope = tx.scope
        # The validation may only start once the challenge is committed as processing.
        tx.after_commit(
            lambda: self._deps.tasks.spawn(self.run_validation(scope, job_id, challenge_id, found))
        )
        return started

    async def _start(
        self, tx: TenantTx, account: Account, challenge: Challenge, now: datetime
    ) -> Challenge:
        """Move the challenge to processing; returns it as stored now."""
        frm = (ChallengeStatus.PENDING,)
        moved = await tx.authzs.transition_challenge(challenge.id, frm, ChallengeStatus.PROCESSING)
        await tx.events.append(
            EventType.CHALLENGE_STARTED,
            object_type="authz",
            object_id=challenge.authz_id,
            actor=f"account:{account.id}",
            now=now,
            challenge=challenge.type.value,
        )
        if moved:
            return dataclasses.replace(challenge, status=ChallengeStatus.PROCESSING)
        stored = await tx.authzs.get_challenge(challenge.id)
        assert stored is not None
        return stored

    async def run_validation(
        self,
        scope: TenantScope,
        job_id: str,
        challenge_id: str,
        found: tuple[Challenge, ValidationRequest] | None = None,
    ) -> None:
        """Validate and persist the outcome; the VA never touches the database.

        ``found`` is what the responding request already knew; a worker loads it afresh.
        """
        try:
            found = found or await self._validation_request(scope, challenge_id)
            if found is None:
                await self._finish_job(scope, job_id)
                return
            challenge, request = found
            if self._deps.settings.validation_delay:
                await asyncio.sleep(self._deps.settings.validation_delay)
            result = await self._va.validate(request)
            await self._record(scope, job_id, challenge, result)
        except Exception:
            log.exception("validation job %s failed; a worker will retry it", job_id)

    async def _validation_request(
        self, scope: TenantScope, challenge_id: str
    ) -> tuple[Challenge, ValidationRequest] | None:
        """The processing challenge and what the VA needs to validate it; None otherwise."""
        async with self._deps.uow.begin(scope, write=False) as tx:
            authz = await tx.authzs.get_by_challenge(challenge_id)
            challenge = _challenge_in(authz, challenge_id)
            if authz is None or challenge is None:
                return None
            if challenge.status is not ChallengeStatus.PROCESSING:
                return None
            account = await tx.accounts.get(authz.account_id)
            assert account is not None
        return challenge, self._request_for(scope, authz, challenge, account)

    def _request_for(
        self, scope: TenantScope, authz: Authorization, challenge: Challenge, account: Account
    ) -> ValidationRequest:
        """The primitives the VA validates with (ARCHITECTURE.md §3.6)."""
        return ValidationRequest(
            identifier=authz.identifier if not authz.wildcard else _wildcard(authz),
            challenge_type=challenge.type,
            token=challenge.token,
            key_authorization=key_authorization(challenge.token, account.jwk_thumbprint),
            account_uri=self._deps.account_uri(scope, account.id),
            caa_identities=self._deps.settings.caa_identities,
        )

    async def _record(
        self, scope: TenantScope, job_id: str, challenge: Challenge, result: ValidationResult
    ) -> None:
        """Persist the outcome; every transition is a compare-and-set from ``processing``."""
        async with self._deps.uow.begin(scope) as tx:
            now = self._deps.clock.now()
            records = [dict(r) for r in result.records]
            if result.ok:
                await self._mark_valid(tx, challenge, records, now)
            else:
                assert result.problem is not None
                await self._mark_invalid(tx, challenge, records, result.problem.to_json(), now)
            await tx.jobs.finish(job_id, "done")

    async def _mark_valid(
        self, tx: TenantTx, challenge: Challenge, records: list[dict[str, Any]], now: datetime
    ) -> None:
        frm = (ChallengeStatus.PROCESSING,)
        await tx.authzs.transition_challenge(
            challenge.id, frm, ChallengeStatus.VALID, validated_at=now, records=records
        )
        expires = now + self._deps.settings.valid_authz_lifetime
        await tx.authzs.transition(
            challenge.authz_id, (AuthzStatus.PENDING,), AuthzStatus.VALID, expires=expires
        )
        await tx.events.append(
            EventType.AUTHZ_VALID,
            object_type="authz",
            object_id=challenge.authz_id,
            actor="va",
            now=now,
            challenge=challenge.type.value,
        )

    async def _mark_invalid(
        self,
        tx: TenantTx,
        challenge: Challenge,
        records: list[dict[str, Any]],
        error: dict[str, Any],
        now: datetime,
    ) -> None:
        frm = (ChallengeStatus.PROCESSING,)
        if await tx.authzs.transition_challenge(
            challenge.id, frm, ChallengeStatus.INVALID, error=error, records=records
        ):
            await self._count_failure(tx, challenge.authz_id, now)
        await tx.authzs.transition(challenge.authz_id, (AuthzStatus.PENDING,), AuthzStatus.INVALID)
        await tx.events.append(
            EventType.AUTHZ_INVALID,
            object_type="authz",
            object_id=challenge.authz_id,
            actor="va",
            now=now,
            challenge=challenge.type.value,
            error=error.get("type"),
        )

    async def _count_failure(self, tx: TenantTx, authz_id: str, now: datetime) -> None:
        """A failed validation spends from its account and identifier's bucket, in the
        transaction that records it; newOrder refuses the identifier while it is empty."""
        tenant = await self._deps.uow.tenants.by_slug(tx.scope.slug)
        limit = self._deps.limits.for_tenant(tenant).failed_validations_per_identifier_per_account
        authz = await tx.authzs.get(authz_id) if limit is not None else None
        if authz is not None:
            await consume(tx, limit, identifier_subject(authz.account_id, authz.identifier), now)

    async def _finish_job(self, scope: TenantScope, job_id: str) -> None:
        async with self._deps.uow.begin(scope) as tx:
            await tx.jobs.finish(job_id, "done")


def _wildcard(authz: Authorization) -> Identifier:
    return Identifier(authz.identifier.type, f"*.{authz.identifier.value}")


async def _owned_authz(tx: TenantTx, account: Account, authz_id: str) -> Authorization:
    authz = await tx.authzs.get(authz_id)
    if authz is None or authz.account_id != account.id:
        raise not_found("authorization")
    return authz


def _challenge_in(authz: Authorization | None, challenge_id: str) -> Challenge | None:
    if authz is None:
        return None
    return next((c for c in authz.challenges if c.id == challenge_id), None)


async def _owned_challenge(
    tx: TenantTx, account: Account, challenge_id: str
) -> tuple[Challenge, Authorization]:
    """A challenge of this account with its authorization (one statement); else 404."""
    authz = await tx.authzs.get_by_challenge(challenge_id)
    challenge = _challenge_in(authz, challenge_id)
    if authz is None or challenge is None or authz.account_id != account.id:
        raise not_found("challenge")
    return challenge, authz
