"""revokeCert (RFC 8555 §7.6): by the issuing account, by an account holding valid
authorizations for every identifier, or with a JWS signed by the certificate's own key."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certplane.server.errors import AcmeProblem, ProblemType, malformed, not_found
from certplane.server.model import Account, Certificate, CertificateStatus, EventType
from certplane.server.ra.deps import RADeps
from certplane.server.ra.issuance import spki_sha256
from certplane.server.storage.uow import TenantTx

# RFC 5280 §5.3.1 reasons a subscriber may give (as Let's Encrypt): unspecified,
# keyCompromise, affiliationChanged, superseded, cessationOfOperation.
SUBSCRIBER_REASONS = frozenset({0, 1, 3, 4, 5})


class RevocationService:
    def __init__(self, deps: RADeps) -> None:
        self._deps = deps

    async def revoke(
        self,
        tx: TenantTx,
        *,
        account: Account | None,
        signing_key: Any,
        certificate_der: bytes,
        reason: object,
    ) -> None:
        """Revoke; ``account`` is None when the request was signed with the certificate key."""
        code = _reason_code(reason)
        leaf = _load(certificate_der)
        cert = await _known_certificate(tx, leaf, certificate_der)
        if cert.status is CertificateStatus.REVOKED:
            raise AcmeProblem(ProblemType.ALREADY_REVOKED, "certificate is already revoked")
        await self._authorize(tx, cert, account, signing_key)
        now = self._deps.clock.now()
        await tx.certificates.revoke(cert.id, code, now)
        actor = f"account:{account.id}" if account else "certificate-key"
        await tx.events.append(
            EventType.REVOKED,
            object_type="certificate",
            object_id=cert.id,
            actor=actor,
            now=now,
            reason=code,
            serial=cert.serial,
        )

    async def _authorize(
        self, tx: TenantTx, cert: Certificate, account: Account | None, signing_key: Any
    ) -> None:
        if account is None:
            if spki_sha256(signing_key) != cert.spki_sha256:
                raise AcmeProblem(
                    ProblemType.UNAUTHORIZED, "the request is not signed by the certificate key"
                )
            return
        if account.id == cert.account_id:
            return
        held = await tx.authzs.valid_for_account(
            account.id, cert.identifiers, self._deps.clock.now()
        )
        if set(cert.identifiers) - held:
            raise AcmeProblem(
                ProblemType.UNAUTHORIZED,
                "the account neither issued this certificate nor holds valid authorizations "
                "for all of its identifiers",
            )


def _reason_code(reason: object) -> int:
    if reason is None:
        return 0
    if not isinstance(reason, int) or isinstance(reason, bool):
        raise malformed("reason must be an integer")
    if reason not in SUBSCRIBER_REASONS:
        allowed = ", ".join(str(r) for r in sorted(SUBSCRIBER_REASONS))
        raise AcmeProblem(
            ProblemType.BAD_REVOCATION_REASON,
            f"revocation reason {reason} is not allowed (allowed: {allowed})",
        )
    return reason


def _load(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise malformed("certificate is not a DER-encoded X.509 certificate") from None


async def _known_certificate(tx: TenantTx, leaf: x509.Certificate, der: bytes) -> Certificate:
    cert = await tx.certificates.get_by_serial(format(leaf.serial_number, "x"))
    if cert is None or cert.chain_pem is None:
        raise not_found("certificate")
    stored = x509.load_pem_x509_certificate(cert.chain_pem.encode("ascii"))
    if stored.public_bytes(Encoding.DER) != der:
        raise not_found("certificate")
    return cert
