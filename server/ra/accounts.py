"""Account use cases: newAccount, update, deactivation, keyChange (RFC 8555 §7.3)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certplane.ca.keys.envelope import open_sealed
from certplane.policy.document import RequestFacts
from certplane.server.errors import AcmeProblem, ProblemType, malformed
from certplane.server.model import Account, AccountStatus, EabStatus, EventType, Tenant
from certplane.server.ra.contacts import parse_contacts
from certplane.server.ra.deps import RADeps
from certplane.server.ra.limits import charge, ip_subject
from certplane.server.ra.policies import account_problem
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def eab_context(tenant_id: str, kid: str) -> bytes:
    """The envelope context of an EAB HMAC key: bound to its tenant and kid."""
    return f"certplane-eab:{tenant_id}:{kid}".encode()


@dataclass(frozen=True)
class EabClaim:
    """A parsed externalAccountBinding (RFC 8555 §7.3.4), MAC not yet checked."""

    kid: str
    alg: str
    signing_input: bytes
    mac: bytes


@dataclass(frozen=True)
class NewAccountRequest:
    jwk: dict[str, Any]
    thumbprint: str
    contact: tuple[str, ...]
    terms_agreed: bool
    only_return_existing: bool
    eab: EabClaim | None
    # The client's address as the server saw it (None when unknown), for per-IP limits.
    client_ip: str | None = None


class AccountService:
    def __init__(self, deps: RADeps) -> None:
        self._deps = deps

    async def new_account(
        self, tx: TenantTx, tenant: Tenant, req: NewAccountRequest
    ) -> tuple[Account, bool]:
        """Create an account, or find the existing one for this key (§7.3, §7.3.1).

        Returns the account and whether it was created now.
        """
        existing = await tx.accounts.get_by_thumbprint(req.thumbprint)
        if existing is not None and existing.status is not AccountStatus.VALID:
            # RFC 8555 §7.3.6: a deactivated account's key authorizes nothing, not even this.
            raise AcmeProblem(ProblemType.UNAUTHORIZED, f"account is {existing.status}", status=401)
        if existing is not None:
            return existing, False
        if req.only_return_existing:
            raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account for this key")
        self._check_terms(req)
        if req.eab is None and tenant.external_account_required:
            raise AcmeProblem(
                ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
                "this tenant requires an externalAccountBinding",
            )
        limits, now = self._deps.limits.for_tenant(tenant), self._deps.clock.now()
        await charge(tx, limits.new_accounts_per_tenant, "tenant", now)
        if req.client_ip is not None:
            await charge(tx, limits.new_accounts_per_ip, ip_subject(req.client_ip), now)
        eab_label = None
        if req.eab is not None:
            eab_label = await self._check_eab(tx, tx.scope, req.eab)
        await self._check_policy(tx, req, eab_label, now)
        account = await self._create(tx, req)
        return account, True

    async def _check_policy(
        self, tx: TenantTx, req: NewAccountRequest, eab_label: str | None, now: datetime
    ) -> None:
        """The tenant policy's account rules (contacts, CEL rules at=account)."""
        policies = self._deps.policies
        active = await policies.current(tx)
        facts = RequestFacts(
            account_id="",
            contact=req.contact,
            eab_kid=req.eab.kid if req.eab else None,
            eab_label=eab_label,
        )
        violations = await policies.run(active, active.policy.check_account, facts)
        if violations:
            raise await policies.refuse(
                tx,
                active,
                "newAccount",
                violations,
                account_problem(active, violations),
                object_type="account",
                object_id=req.thumbprint,
                actor=f"key:{req.thumbprint}",
                now=now,
            )

    def _check_terms(self, req: NewAccountRequest) -> None:
        if self._deps.settings.terms_of_service and not req.terms_agreed:
            raise AcmeProblem(
                ProblemType.MALFORMED,
                "you must agree to the terms of service (termsOfServiceAgreed)",
            )

    async def _check_eab(self, tx: TenantTx, scope: TenantScope, claim: EabClaim) -> str:
        """Single-use EAB keys: unknown, revoked, used and foreign keys are all refused (§7.3.4).

        Returns the key's label (policy rules may look at it).
        """
        key = await tx.eab.get(claim.kid)
        if key is None or key.status is not EabStatus.UNBOUND:
            # NOTE(tenancy): a foreign tenant's kid is answered exactly like an unknown one.
            raise AcmeProblem(
                ProblemType.UNAUTHORIZED, "external account binding key is unknown or not usable"
            )
        secret = open_sealed(
            self._deps.master_key, key.hmac_sealed, context=eab_context(scope.tenant_id, key.kid)
        )
        expected = hmac.new(secret, claim.signing_input, _HMAC_HASHES[claim.alg]).digest()
        if not hmac.compare_digest(expected, claim.mac):
            raise AcmeProblem(
                ProblemType.UNAUTHORIZED, "external account binding signature is invalid"
            )
        return key.label

    async def _create(self, tx: TenantTx, req: NewAccountRequest) -> Account:
        now = self._deps.clock.now()
        eab_kid = req.eab.kid if req.eab else None
        account = await tx.accounts.create(
            jwk=req.jwk,
            thumbprint=req.thumbprint,
            contact=req.contact,
            terms_agreed=req.terms_agreed,
            eab_kid=eab_kid,
            now=now,
        )
        if eab_kid is not None:
            if not await tx.eab.bind(eab_kid, account.id, now):
                raise AcmeProblem(
                    ProblemType.UNAUTHORIZED,
                    "external account binding key is unknown or not usable",
                )
            await tx.events.append(
                EventType.EAB_BOUND,
                object_type="eab",
                object_id=eab_kid,
                actor=f"account:{account.id}",
                now=now,
                account_id=account.id,
            )
        await tx.events.append(
            EventType.ACCOUNT_CREATED,
            object_type="account",
            object_id=account.id,
            actor=f"account:{account.id}",
            now=now,
            eab_kid=eab_kid,
        )
        return account

    async def update_account(
        self, tx: TenantTx, account: Account, payload: dict[str, Any]
    ) -> Account:
        """Update contacts or deactivate (§7.3.2, §7.3.6); other fields are ignored.

        A "status" equal to the account's current one is accepted as no change: clients such
        as certbot's ``acme`` library send the whole account object back with new contacts.
        """
        status = payload.get("status")
        if status == account.status.value:
            status = None
        elif status is not None and status != AccountStatus.DEACTIVATED.value:
            raise malformed('the only status a client may set is "deactivated"')
        contact = parse_contacts(payload["contact"]) if "contact" in payload else None
        now = self._deps.clock.now()
        if contact is not None:
            await tx.accounts.update_contact(account.id, contact)
            await tx.events.append(
                EventType.ACCOUNT_UPDATED,
                object_type="account",
                object_id=account.id,
                actor=f"account:{account.id}",
                now=now,
                contacts=len(contact),
            )
        if status is not None:
            await self._deactivate(tx, account, now)
        updated = await tx.accounts.get(account.id)
        assert updated is not None
        return updated

    async def _deactivate(self, tx: TenantTx, account: Account, now: datetime) -> None:
        """A deactivated account can no longer be used; its orders and authorizations stay."""
        await tx.accounts.set_status(account.id, AccountStatus.DEACTIVATED)
        await tx.events.append(
            EventType.ACCOUNT_DEACTIVATED,
            object_type="account",
            object_id=account.id,
            actor=f"account:{account.id}",
            now=now,
        )

    async def change_key(
        self, tx: TenantTx, account: Account, new_jwk: dict[str, Any], thumbprint: str
    ) -> Account:
        """Roll the account key (§7.3.5); a key held by another account is a 409 conflict."""
        holder = await tx.accounts.get_by_thumbprint(thumbprint)
        if holder is not None:
            raise AcmeProblem(
                ProblemType.MALFORMED,
                "the new key is already in use by an account",
                status=409,
                location=self._deps.account_uri(tx.scope, holder.id),
            )
        await tx.accounts.change_key(account.id, new_jwk, thumbprint)
        await tx.events.append(
            EventType.ACCOUNT_KEY_CHANGED,
            object_type="account",
            object_id=account.id,
            actor=f"account:{account.id}",
            now=self._deps.clock.now(),
            new_thumbprint=thumbprint,
        )
        updated = await tx.accounts.get(account.id)
        assert updated is not None
        return updated
