"""Self-authenticating nonces (RFC 8555 §6.5): bound to tenant, lifetime and secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certplane.server.wfe.nonces import NonceService

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def service(secret: bytes = b"s" * 32) -> NonceService:
    return NonceService(secret, timedelta(minutes=5))


def test_issued_nonce_checks_for_its_tenant():
    nonce = service().issue("tenant-a", NOW)
    assert service().check("tenant-a", nonce, NOW) == NOW.replace(microsecond=0) + timedelta(
        minutes=5
    )


def test_nonces_are_unique_and_base64url():
    nonces = {service().issue("t", NOW) for _ in range(200)}
    assert len(nonces) == 200
    assert all(
        set(n) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for n in nonces
    )


def test_other_tenant_other_secret_and_expiry_are_refused():
    nonce = service().issue("tenant-a", NOW)
    assert service().check("tenant-b", nonce, NOW) is None
    assert service(b"x" * 32).check("tenant-a", nonce, NOW) is None
    assert service().check("tenant-a", nonce, NOW + timedelta(minutes=6)) is None


def test_tampered_and_malformed_nonces_are_refused():
    nonce = service().issue("t", NOW)
    flipped = nonce[:-2] + ("A" if nonce[-2] != "A" else "B") + nonce[-1]
    for bad in (flipped, nonce + "=", nonce[:-1], "", "!!!!", "a" * 200, nonce + "A"):
        assert service().check("t", bad, NOW) is None
