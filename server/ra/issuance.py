"""Finalize and the one issuance path (RFC 8555 §7.4; ARCHITECTURE.md §0.6, §3.5).

Finalize moves the order to ``processing`` and creates an issuance job in one transaction. The
request then runs the job inline and answers ``valid`` when it finishes within the deadline,
else ``processing``; either way the job (or, after a crash, a worker) finishes it. A serial is
reserved and committed before anything is signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.ca.api import (
    Deferred,
    IssuanceRefused,
    IssuanceRequest,
    Issued,
    new_serial,
)
from certplane.ca.keys.errors import KeyBindingError, KeystoreUnavailable
from certplane.policy.csr import CSRRejected, check_csr
from certplane.policy.document import RequestFacts, csr_key_of
from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import (
    Account,
    EventType,
    IdentifierType,
    IssuerRecord,
    Order,
    OrderStatus,
    Tenant,
    TenantStatus,
)
from certplane.server.ra.approval_records import hold_order
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuers import IssuerRegistry
from certplane.server.ra.limits import QUOTA_SUBJECT, charge, hold_issuance_slot, refund
from certplane.server.ra.orders import OrderState, load_order_state
from certplane.server.ra.policies import (
    ActivePolicy,
    eab_facts,
    facts_of,
    finalize_problem,
    names_of,
)
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

log = logging.getLogger(__name__)

ISSUE_JOB = "issue"
BACKDATE = timedelta(minutes=1)
CA_PROFILE = "default"


def spki_sha256(public_key: Any) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


Reservation = tuple[str, IssuanceRequest, IssuerRecord]
# The CSR's public key and its common name (lowercase), if it had one.
CsrSubject = tuple[Any, str | None]


@dataclass
class Acceptance:
    """A finalize accepted in a request's transaction; ``task`` runs once it has committed."""

    scope: TenantScope
    account: Account
    order: Order
    job_id: str | None  # None: the order waits for an approver (no issuance job yet)
    task: asyncio.Task[str | None] | None = None

    @property
    def order_id(self) -> str:
        return self.order.id

    def started(self, task: asyncio.Task[str | None]) -> None:
        self.task = task


class IssuanceService:
    def __init__(self, deps: RADeps, issuers: IssuerRegistry) -> None:
        self._deps = deps
        self._issuers = issuers

    async def accept(
        self,
        tx: TenantTx,
        tenant: Tenant,
        account: Account,
        account_key: Any,
        order_id: str,
        csr_der: bytes,
    ) -> Acceptance:
        """Finalize's transactional part (§7.4), inside the request's unit of work.

        The order moves to ``processing`` with its CSR, the ``certificate.requested`` event and a
        leased issuance job are written, and the first serial is reserved; the issuance starts
        once all of that has committed.
        """
        if tenant.status is not TenantStatus.ACTIVE:
            raise AcmeProblem(ProblemType.UNAUTHORIZED, "this tenant is suspended: no issuance")
        now = self._deps.clock.now()
        state = await load_order_state(tx, account, order_id, now)
        if state.status is not OrderStatus.READY:
            raise AcmeProblem(ProblemType.ORDER_NOT_READY, f"order is {state.status}, not ready")
        subject = _check_csr(csr_der, state.order, account_key)
        active = await self._deps.policies.current(tx)
        label, creator = await eab_facts(tx, account)
        facts = facts_of(account, label, state.order.profile)
        await self._check_policy(tx, active, state.order, subject, facts, now)
        await _policy_issuer(tx, active, state.order.profile)
        # At most so many orders of the tenant in issuance; the certificate quota is spent with
        # the finalize and given back if issuance fails.
        limits = self._deps.limits.for_tenant(tenant)
        await hold_issuance_slot(tx, limits.concurrent_issuance_per_tenant, now)
        await charge(tx, limits.certificates_per_tenant, QUOTA_SUBJECT, now)
        moved = await tx.orders.transition(
            order_id, (OrderStatus.PENDING,), OrderStatus.PROCESSING, csr_der=csr_der
        )
        if not moved:
            raise AcmeProblem(ProblemType.ORDER_NOT_READY, "order is already being finalized")
        await tx.events.append(
            EventType.REQUESTED,
            object_type="order",
            object_id=order_id,
            actor=f"account:{account.id}",
            now=now,
        )
        names = names_of(state.order.identifiers)
        rule = await self._deps.policies.run(active, active.policy.approval_rule, names, facts)
        if rule is not None:
            requester = creator or f"account:{account.id}"
            await hold_order(
                tx, tenant, account, state.order, rule=rule, active=active,
                requested_by=requester, now=now,
            )  # fmt: skip
            return Acceptance(tx.scope, account, state.order, None)
        job_id = await tx.jobs.enqueue(
            ISSUE_JOB,
            order_id,
            now=now,
            locked_until=now + self._deps.settings.finalize_deadline + timedelta(seconds=30),
            deadline=now + self._deps.settings.issuance_deadline,
        )
        reservation = await self._reserve_in(tx, state.order, subject, active)
        acceptance = Acceptance(tx.scope, account, state.order, job_id)
        tx.after_commit(lambda: acceptance.started(self._spawn(acceptance, reservation)))
        return acceptance

    async def _check_policy(
        self,
        tx: TenantTx,
        active: ActivePolicy,
        order: Order,
        subject: CsrSubject,
        facts: RequestFacts,
        now: datetime,
    ) -> None:
        """The tenant policy at finalize: the CSR's key and CEL rules (badCSR, RFC 8555 §7.4).

        The built-in policy adds nothing to the CSR checks every tenant gets (policy/csr.py).
        """
        if active.version is None:
            return
        policies = self._deps.policies
        names = names_of(order.identifiers)
        key = csr_key_of(subject[0])
        violations = await policies.run(active, active.policy.check_finalize, names, facts, key)
        if violations:
            raise await policies.refuse(
                tx,
                active,
                "finalize",
                violations,
                finalize_problem(active, violations),
                object_type="order",
                object_id=order.id,
                actor=f"account:{order.account_id}",
                now=now,
            )

    def _spawn(self, acceptance: Acceptance, reservation: Reservation) -> asyncio.Task[str | None]:
        assert acceptance.job_id is not None
        return self._deps.tasks.spawn(
            self.run_issuance(acceptance.scope, acceptance.job_id, acceptance.order_id, reservation)
        )

    async def complete(self, acceptance: Acceptance) -> OrderState:
        """Wait for the inline issuance up to the finalize deadline; the order as it then is."""
        if acceptance.task is not None:
            deadline = self._deps.settings.finalize_deadline.total_seconds()
            with contextlib.suppress(TimeoutError):
                cert_id = await asyncio.wait_for(asyncio.shield(acceptance.task), deadline)
                if cert_id is not None:
                    # NOTE(no-reread): the task committed exactly this transition.
                    issued = dataclasses.replace(
                        acceptance.order, stored_status=OrderStatus.VALID, certificate_id=cert_id
                    )
                    return OrderState(issued, OrderStatus.VALID)
        async with self._deps.uow.begin(acceptance.scope, write=False) as tx:
            now = self._deps.clock.now()
            return await load_order_state(tx, acceptance.account, acceptance.order_id, now)

    async def run_issuance(
        self,
        scope: TenantScope,
        job_id: str,
        order_id: str,
        reservation: Reservation | None = None,
    ) -> str | None:
        """One attempt of the issuance job; every outcome is recorded, none is lost.

        ``reservation`` is the serial finalize reserved; a worker's attempt reserves its own.
        Returns the certificate id when this attempt issued.
        """
        try:
            if self._deps.settings.finalize_processing:
                await asyncio.sleep(self._deps.settings.finalize_processing)
            return await self._attempt(scope, job_id, order_id, reservation)
        except IssuanceRefused as exc:
            await self._fail(scope, job_id, order_id, exc.detail)
        except AcmeProblem as exc:  # the tenant policy names an issuer that cannot sign
            await self._fail(scope, job_id, order_id, exc.detail)
        except KeyBindingError:
            # NOTE(tenancy): the issuer's key ref names another owner: never retried, alarmed.
            log.error("issuance job %s: issuer key is not bound to tenant %s", job_id, scope.slug)
            await self._fail(scope, job_id, order_id, "the issuer key is not bound to this tenant")
        except KeystoreUnavailable as exc:
            log.warning("issuance job %s: key store unavailable (%s); will retry", job_id, exc)
            await self._retry_or_fail(scope, job_id, order_id, f"key store unavailable: {exc}")
        except Exception as exc:
            log.exception("issuance job %s failed", job_id)
            await self._retry_or_fail(scope, job_id, order_id, type(exc).__name__)
        return None

    async def _attempt(
        self, scope: TenantScope, job_id: str, order_id: str, reservation: Reservation | None
    ) -> str | None:
        """The certificate id when this attempt issued, else None."""
        reserved = reservation or await self._reserve(scope, job_id, order_id)
        if reserved is None:
            return None
        cert_id, request, record = reserved
        tenant = await self._deps.uow.tenants.by_slug(scope.slug)
        aia = (tenant.aia_ocsp, tenant.aia_ca_issuers) if tenant else (True, True)
        backend = await self._issuers.backend(scope, record, aia)
        result = await backend.issue(request)
        if isinstance(result, Deferred):
            await self._reschedule(scope, job_id, timedelta(seconds=result.retry_after_seconds))
            return None
        return await self._store(scope, job_id, order_id, cert_id, result)

    async def _reserve(self, scope: TenantScope, job_id: str, order_id: str) -> Reservation | None:
        """Reserve and commit a serial for a worker's attempt; None when nothing is to issue."""
        async with self._deps.uow.begin(scope) as tx:
            loaded = await tx.orders.load(order_id)
            if loaded is None or loaded.order.stored_status is not OrderStatus.PROCESSING:
                await tx.jobs.finish(job_id, "done")
                return None
            assert loaded.csr_der is not None
            return await self._reserve_in(tx, loaded.order, _subject_of(loaded.csr_der))

    async def _reserve_in(
        self,
        tx: TenantTx,
        order: Order,
        subject: CsrSubject,
        active: ActivePolicy | None = None,
    ) -> Reservation:
        """A fresh serial recorded in ``tx`` before anything is signed (``active``: the policy
        the caller already read in ``tx``).

        A reservation left by an earlier, crashed attempt was never released: it is abandoned.
        """
        active = active or await self._deps.policies.current(tx)
        record = await _policy_issuer(tx, active, order.profile)
        if record is None:
            record = await self._issuers.for_key(tx, subject[0])
        validity = await self._validity(tx, active, order)
        await tx.certificates.abandon_reserved(order.id)
        serial = new_serial()
        cert_id = await tx.certificates.reserve(
            serial=format(serial, "x"),
            issuer_id=record.id,
            order_id=order.id,
            account_id=order.account_id,
            identifiers=order.identifiers,
            now=self._deps.clock.now(),
        )
        request = self._request(tx.scope, order, serial, subject, validity)
        return cert_id, request, record

    async def _validity(self, tx: TenantTx, active: ActivePolicy, order: Order) -> timedelta:
        """The lifetime of the leaf: the configured one, or what the tenant policy sets for the
        order's profile (and the account's EAB key, which may only shorten it)."""
        if active.version is None:
            return self._deps.settings.leaf_validity
        account = await tx.accounts.get(order.account_id)
        eab_kid = account.eab_kid if account is not None else None
        validity: timedelta = active.policy.validity(order.profile, eab_kid)
        return validity

    def _request(
        self,
        scope: TenantScope,
        order: Order,
        serial: int,
        subject: CsrSubject,
        validity: timedelta,
    ) -> IssuanceRequest:
        public_key, requested_cn = subject
        not_before = self._deps.clock.now() - BACKDATE
        dns = tuple(i.value for i in order.identifiers if i.type is IdentifierType.DNS)
        ips = tuple(_ip(i.value) for i in order.identifiers if i.type is IdentifierType.IP)
        return IssuanceRequest(
            tenant_id=scope.tenant_id,
            serial=serial,
            public_key=public_key,
            dns_names=dns,
            ip_addresses=ips,
            not_before=not_before,
            not_after=not_before + validity,
            # The order's profile is the tenant policy's (validity, issuer); the certificate's
            # content follows the CA's TLS server profile.
            profile=CA_PROFILE,
            common_name=_common_name(requested_cn, dns),
        )

    async def _store(
        self, scope: TenantScope, job_id: str, order_id: str, cert_id: str, issued: Issued
    ) -> str:
        """Record the certificate, the order ``valid`` and the ``issued`` event; the cert id."""
        leaf = x509.load_der_x509_certificate(issued.certificate_der)
        async with self._deps.uow.begin(scope) as tx:
            now = self._deps.clock.now()
            await tx.certificates.mark_issued(
                cert_id,
                chain_pem=issued.chain_pem,
                spki_sha256=spki_sha256(leaf.public_key()),
                fingerprint_sha256=hashlib.sha256(issued.certificate_der).hexdigest(),
                not_before=leaf.not_valid_before_utc,
                not_after=leaf.not_valid_after_utc,
            )
            await tx.orders.transition(
                order_id, (OrderStatus.PROCESSING,), OrderStatus.VALID, certificate_id=cert_id
            )
            await tx.jobs.finish(job_id, "done")
            await tx.events.append(
                EventType.ISSUED,
                object_type="certificate",
                object_id=cert_id,
                actor="ca",
                now=now,
                order_id=order_id,
                serial=format(leaf.serial_number, "x"),
                not_after=leaf.not_valid_after_utc.isoformat(),
            )
        return cert_id

    async def _fail(self, scope: TenantScope, job_id: str, order_id: str, detail: str) -> None:
        """The order becomes invalid with the reason in ``order.error``; reservations abandoned."""
        error = AcmeProblem(ProblemType.SERVER_INTERNAL, f"issuance failed: {detail}").to_json()
        async with self._deps.uow.begin(scope) as tx:
            await tx.certificates.abandon_reserved(order_id)
            failed = await tx.orders.transition(
                order_id, (OrderStatus.PROCESSING,), OrderStatus.INVALID, error=error
            )
            if failed:  # the quota unit this order took at finalize comes back, once
                tenant = await self._deps.uow.tenants.by_slug(scope.slug)
                quota = self._deps.limits.for_tenant(tenant).certificates_per_tenant
                await refund(tx, quota, QUOTA_SUBJECT, self._deps.clock.now())
            await tx.jobs.finish(job_id, "failed", detail)
            await tx.events.append(
                EventType.FAILED,
                object_type="order",
                object_id=order_id,
                actor="ca",
                now=self._deps.clock.now(),
                detail=detail,
            )

    async def _retry_or_fail(
        self, scope: TenantScope, job_id: str, order_id: str, reason: str
    ) -> None:
        async with self._deps.uow.begin(scope, write=False) as tx:
            job = await tx.jobs.get(job_id)
        now = self._deps.clock.now()
        if job is None or now >= job["deadline"]:
            detail = f"the CA did not answer before the deadline (last error: {reason})"
            await self._fail(scope, job_id, order_id, detail)
            return
        backoff = self._deps.settings.issuance_retry_delay(job["attempts"])
        await self._reschedule(scope, job_id, backoff, reason)

    async def _reschedule(
        self, scope: TenantScope, job_id: str, delay: timedelta, reason: str = "deferred"
    ) -> None:
        async with self._deps.uow.begin(scope) as tx:
            await tx.jobs.reschedule(job_id, self._deps.clock.now() + delay, reason)


async def _policy_issuer(tx: TenantTx, active: ActivePolicy, profile: str) -> IssuerRecord | None:
    """The issuer the tenant policy maps ``profile`` to (None: chosen by the CSR's key).

    A mapping to an issuer that is not active refuses the request: the policy's allowed issuers
    are a constraint, never a hint.
    """
    issuer_id = active.policy.issuer_for(profile)
    if issuer_id is None:
        return None
    record = await tx.issuers.get(issuer_id)
    if record is None or record.status != "active":
        raise AcmeProblem(
            ProblemType.UNAUTHORIZED,
            f"tenant policy {active.label} maps profile {profile!r} to issuer {issuer_id}, "
            "which is not active: the tenant admin must update the policy",
        )
    return record


def _check_csr(csr_der: bytes, order: Order, account_key: Any) -> CsrSubject:
    """The policy's CSR checks (badCSR, badPublicKey); the key and CN it accepted."""
    try:
        info = check_csr(csr_der, order.identifiers, account_key)
    except CSRRejected as exc:
        raise AcmeProblem(ProblemType(exc.kind.value), exc.detail) from None
    return info.public_key, info.common_name


def _subject_of(csr_der: bytes) -> CsrSubject:
    """Key and CN of a CSR finalize already accepted (a worker's retry)."""
    csr = x509.load_der_x509_csr(csr_der)
    names = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return csr.public_key(), str(names[0].value).lower() if names else None


def _common_name(requested: str | None, dns: tuple[str, ...]) -> str | None:
    """The CSR's CN when it is one of the names, else the first name that fits (64 chars)."""
    if requested is not None:
        return requested if requested in dns else None
    return dns[0] if dns and len(dns[0]) <= 64 else None


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)
