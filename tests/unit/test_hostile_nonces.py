"""The hostile nonce knob: rejects a share of valid nonces, never a signer's retry."""

from __future__ import annotations

import json
import random

from cptest.jwsclient import b64

from certplane.server.wfe.hostile import NonceRejecter
from certplane.server.wfe.jose import ParsedJws, parse_jws

JWK = {"kty": "EC", "crv": "P-256", "x": b64(b"x" * 32), "y": b64(b"y" * 32)}


def _jws(kid: str | None = None, jwk: dict[str, str] | None = None) -> ParsedJws:
    header: dict[str, object] = {
        "alg": "ES256",
        "nonce": b64(b"sixteen byte nce"),
        "url": "https://acme.test/x",
    }
    header |= {"kid": kid} if kid else {"jwk": jwk}
    protected = b64(json.dumps(header).encode())
    body = json.dumps({"protected": protected, "payload": "", "signature": b64(b"s" * 64)})
    return parse_jws(body.encode())


def test_off_never_rejects() -> None:
    rejecter = NonceRejecter(0)
    assert not any(rejecter.should_reject(_jws(kid="a")) for _ in range(1000))


def test_rejects_about_the_configured_share() -> None:
    rejecter = NonceRejecter(30, random.Random(7))
    signers = [_jws(kid=f"https://acme.test/acct/{i}") for i in range(2000)]
    rejected = sum(rejecter.should_reject(jws) for jws in signers)
    assert 480 < rejected < 720  # 30 % of 2000 = 600, well inside binomial noise


def test_a_retry_after_a_rejection_always_passes() -> None:
    rejecter = NonceRejecter(100)
    jws = _jws(kid="https://acme.test/acct/1")
    outcomes = [rejecter.should_reject(jws) for _ in range(6)]
    assert outcomes == [True, False, True, False, True, False]


def test_signers_are_independent() -> None:
    rejecter = NonceRejecter(100)
    first, second = _jws(kid="https://acme.test/acct/1"), _jws(jwk=JWK)
    assert rejecter.should_reject(first)
    assert rejecter.should_reject(second)
    assert not rejecter.should_reject(first)
    assert not rejecter.should_reject(second)


def test_jwk_signers_are_told_apart_by_key() -> None:
    rejecter = NonceRejecter(100)
    other = {**JWK, "x": b64(b"z" * 32)}
    assert rejecter.should_reject(_jws(jwk=JWK))
    assert rejecter.should_reject(_jws(jwk=other))
    assert not rejecter.should_reject(_jws(jwk=dict(reversed(JWK.items()))))


def test_memory_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr("certplane.server.wfe.hostile.REMEMBERED_SIGNERS", 3)
    rejecter = NonceRejecter(100)
    for i in range(10):
        assert rejecter.should_reject(_jws(kid=f"k{i}"))
    assert len(rejecter._just_rejected) == 3
    assert rejecter.should_reject(_jws(kid="k0"))  # forgotten: rejected again
    assert not rejecter.should_reject(_jws(kid="k9"))
