"""JWK <-> key conversion and RFC 7638 thumbprints (RFC 7517, RFC 7518 §6, RFC 8037 §2)."""

from __future__ import annotations

import base64
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.wfe.jose import (
    jwk_thumbprint,
    jwk_to_public_key,
    key_thumbprint,
    public_key_to_jwk,
)

MALFORMED, BAD_KEY = ProblemType.MALFORMED, ProblemType.BAD_PUBLIC_KEY

# RFC 7638 §3.1: the example key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
        "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh"
        "6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def problem(jwk: object) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as excinfo:
        jwk_to_public_key(jwk)
    return excinfo.value


KEYS: dict[str, Any] = {
    "P-256": ec.generate_private_key(ec.SECP256R1()).public_key(),
    "P-384": ec.generate_private_key(ec.SECP384R1()).public_key(),
    "P-521": ec.generate_private_key(ec.SECP521R1()).public_key(),
    "RSA": rsa.generate_private_key(65537, 2048).public_key(),
    "Ed25519": ed25519.Ed25519PrivateKey.generate().public_key(),
}


def test_rfc7638_example_thumbprint():
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    assert key_thumbprint(jwk_to_public_key(RFC7638_JWK)) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("name", list(KEYS))
def test_round_trip(name: str):
    key = KEYS[name]
    jwk = public_key_to_jwk(key)
    assert public_key_to_jwk(jwk_to_public_key(jwk)) == jwk
    assert jwk_to_public_key(jwk) == key


@pytest.mark.parametrize("name", ["P-256", "P-384", "P-521", "RSA"])
def test_matches_josepy(name: str):
    josepy_jwk = jose.JWK.load(
        KEYS[name].public_bytes(
            jose.jwk.serialization.Encoding.PEM,
            jose.jwk.serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    assert public_key_to_jwk(KEYS[name]) == josepy_jwk.to_partial_json()
    assert key_thumbprint(KEYS[name]) == b64(josepy_jwk.thumbprint())


def test_ed25519_jwk_shape():
    jwk = public_key_to_jwk(KEYS["Ed25519"])
    assert set(jwk) == {"crv", "kty", "x"} and jwk["crv"] == "Ed25519" and jwk["kty"] == "OKP"


def test_optional_members_do_not_change_the_thumbprint():
    jwk = public_key_to_jwk(KEYS["P-256"])
    decorated = {**jwk, "use": "sig", "alg": "ES256", "kid": "k1", "key_ops": ["verify"]}
    assert jwk_thumbprint(decorated) == jwk_thumbprint(jwk) == key_thumbprint(KEYS["P-256"])


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_members_are_refused(member: str):
    jwk = {**public_key_to_jwk(KEYS["RSA"]), member: "AQAB"}
    exc = problem(jwk)
    assert (exc.type, exc.detail) == (MALFORMED, "private key material in jwk")


def test_symmetric_key_is_private_material():
    assert problem({"kty": "oct", "k": "c2VjcmV0"}).detail == "private key material in jwk"


def ec_jwk(**changes: Any) -> dict[str, Any]:
    return {**public_key_to_jwk(KEYS["P-256"]), **changes}


def rsa_jwk(**changes: Any) -> dict[str, Any]:
    return {**public_key_to_jwk(KEYS["RSA"]), **changes}


def _int_b64(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


P256 = public_key_to_jwk(KEYS["P-256"])


@pytest.mark.parametrize(
    ("jwk", "kind", "detail"),
    [
        ("key", MALFORMED, "jwk must be a JSON object"),
        ([P256], MALFORMED, "jwk must be a JSON object"),
        ({}, MALFORMED, "jwk member 'kty' must be a string"),
        (ec_jwk(kty=["EC"]), MALFORMED, "jwk member 'kty' must be a string"),
        (ec_jwk(kty="oct"), BAD_KEY, "unsupported jwk key type: expected EC, RSA or OKP"),
        (ec_jwk(kty="ec"), BAD_KEY, "unsupported jwk key type"),
        (ec_jwk(crv=None), MALFORMED, "jwk member 'crv' must be a string"),
        (ec_jwk(crv=["P-256"]), MALFORMED, "jwk member 'crv' must be a string"),
        (ec_jwk(crv="P-192"), BAD_KEY, "unsupported EC curve: expected P-256, P-384 or P-521"),
        (ec_jwk(crv="secp256k1"), BAD_KEY, "unsupported EC curve"),
        (ec_jwk(crv="P-384"), MALFORMED, "jwk member 'x' must be 48 octets"),
        (ec_jwk(x=None), MALFORMED, "jwk member 'x' must be a base64url string"),
        (ec_jwk(y=P256["y"] + "="), MALFORMED, "jwk member 'y' is not canonical"),
        (ec_jwk(x=P256["x"][:-1]), MALFORMED, "jwk member 'x' is not canonical"),
        (ec_jwk(x=b64(b"\x01" * 31)), MALFORMED, "jwk member 'x' must be 32 octets"),
        (ec_jwk(x=b64(b"\x00" + b"\x01" * 32)), MALFORMED, "jwk member 'x' must be 32 octets"),
        (ec_jwk(y=b64(b"\x01" * 32)), BAD_KEY, "EC point is not on the curve"),
        (rsa_jwk(n=None), MALFORMED, "jwk member 'n' must be a base64url string"),
        (rsa_jwk(e=""), MALFORMED, "jwk member 'e' must be a minimal-length unsigned integer"),
        (rsa_jwk(e="AAEAAQ"), MALFORMED, "jwk member 'e' must be a minimal-length"),
        (rsa_jwk(e="AA"), MALFORMED, "jwk member 'e' must be a minimal-length"),
        (
            rsa_jwk(n=b64(b"\x00" + base64.urlsafe_b64decode(rsa_jwk()["n"] + "=="))),
            MALFORMED,
            "jwk member 'n' must be a minimal-length",
        ),
        (rsa_jwk(n=_int_b64((1 << 8192) + 1)), BAD_KEY, "RSA key too large: at most 8192 bits"),
        (rsa_jwk(e=_int_b64((1 << 256) + 1)), BAD_KEY, "RSA key too large"),
        (rsa_jwk(e="Ag"), BAD_KEY, "invalid RSA public key"),
        ({"kty": "OKP", "crv": "Ed448", "x": b64(b"\x01" * 57)}, BAD_KEY, "expected Ed25519"),
        ({"kty": "OKP", "crv": "X25519", "x": b64(b"\x01" * 32)}, BAD_KEY, "expected Ed25519"),
        ({"kty": "OKP", "x": b64(b"\x01" * 32)}, MALFORMED, "jwk member 'crv' must be a string"),
        ({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" * 31)}, MALFORMED, "must be 32 octets"),
    ],
)
def test_bad_jwks(jwk: object, kind: ProblemType, detail: str):
    exc = problem(jwk)
    assert exc.type is kind
    assert detail in exc.detail


def test_details_never_contain_key_material():
    for jwk in (ec_jwk(y=b64(b"\x01" * 32)), rsa_jwk(e="AAEAAQ"), {**rsa_jwk(), "d": "AQAB"}):
        exc = problem(jwk)
        for value in jwk.values():
            assert len(value) < 8 or value not in exc.detail


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256K1()).public_key(),
        ed448.Ed448PrivateKey.generate().public_key(),
        x25519.X25519PrivateKey.generate().public_key(),
        object(),
    ],
)
def test_public_key_to_jwk_refuses_unsupported_keys(key: object):
    with pytest.raises(AcmeProblem) as excinfo:
        public_key_to_jwk(key)
    assert excinfo.value.type is BAD_KEY
