"""parse_jws and signature verification: real client output accepted, hostile input refused.

Real clients: certbot's ``acme``/josepy sign every request below (josepy has no EdDSA, so Ed25519
JWS are signed by hand). Hostile inputs are hand-built, validly signed where it matters, so each
case fails for exactly the reason it names (RFC 7515, RFC 8555 §6.2).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import josepy as jose
import pytest
from acme import jws as acme_jws
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.wfe.jose import (
    SUPPORTED_ALGORITHMS,
    ParsedJws,
    check_alg_matches_key,
    jwk_thumbprint,
    jwk_to_public_key,
    parse_flattened,
    parse_jws,
    public_key_to_jwk,
    verify_jws,
    verify_signature,
)

URL = "https://acme.example/acme/t1/new-order"
NONCE = "bm9uY2Utb25l"  # "nonce-one"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
_HASHES = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@cache
def private_key(alg: str) -> PrivateKey:
    """One key per algorithm; 'P-384' gives a key for alg/key mismatch cases."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg])
    if alg == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "RS256":
        return rsa.generate_private_key(65537, 2048)
    return ed25519.Ed25519PrivateKey.generate()


def raw_sign(alg: str, key: PrivateKey, message: bytes) -> bytes:
    """A JWS signature (RFC 7518 §3): ECDSA as fixed-length r || s."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(_HASHES.get(alg, hashes.SHA256()))))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(message)


def header(alg: str = "ES256", key_alg: str | None = None, **extra: Any) -> dict[str, Any]:
    """An ACME protected header with a jwk; ``extra`` adds or (with None) removes members."""
    protected: dict[str, Any] = {
        "alg": alg,
        "jwk": public_key_to_jwk(private_key(key_alg or alg).public_key()),
        "nonce": NONCE,
        "url": URL,
    }
    for name, value in extra.items():
        if value is None:
            protected.pop(name, None)
        else:
            protected[name] = value
    return protected


def flat(
    protected: dict[str, Any] | str,
    payload: bytes = b"{}",
    *,
    alg: str = "ES256",
    key_alg: str | None = None,
) -> dict[str, str]:
    """A signed flattened JWS; ``protected`` may be raw JSON text (for duplicate members)."""
    text = protected if isinstance(protected, str) else json.dumps(protected)
    protected_b64, payload_b64 = b64(text), b64(payload)
    message = f"{protected_b64}.{payload_b64}".encode()
    signature = raw_sign(alg, private_key(key_alg or alg), message)
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64(signature)}


def body(jws: dict[str, Any]) -> bytes:
    return json.dumps(jws).encode()


def problem(call, *args: Any, **kwargs: Any) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def malformed(raw: bytes, detail_part: str) -> AcmeProblem:
    exc = problem(parse_jws, raw)
    assert exc.type is ProblemType.MALFORMED, exc.detail
    assert detail_part in exc.detail
    return exc


def verified(raw: bytes) -> ParsedJws:
    parsed = parse_jws(raw)
    key = jwk_to_public_key(parsed.jwk)
    verify_jws(parsed, key)
    return parsed


# -- real client output ------------------------------------------------------------------------

JOSEPY = {
    "ES256": (jose.ES256, jose.JWKEC),
    "ES384": (jose.ES384, jose.JWKEC),
    "ES512": (jose.ES512, jose.JWKEC),
    "RS256": (jose.RS256, jose.JWKRSA),
}


@pytest.mark.parametrize("alg", list(JOSEPY))
@pytest.mark.parametrize("payload", [b'{\n  "identifiers": []\n}', b""])
def test_acme_library_jws_with_jwk(alg: str, payload: bytes):
    jwa, jwk_cls = JOSEPY[alg]
    key = jwk_cls(key=private_key(alg))
    signed = acme_jws.JWS.sign(payload, key=key, alg=jwa, nonce=b"nonce-one", url=URL)
    parsed = verified(signed.json_dumps(indent=2).encode())
    assert (parsed.alg, parsed.url, parsed.nonce, parsed.kid) == (alg, URL, NONCE, None)
    assert parsed.payload == payload
    assert parsed.payload_json == (json.loads(payload) if payload else None)
    assert jwk_thumbprint(parsed.jwk) == b64(key.thumbprint())


@pytest.mark.parametrize("alg", list(JOSEPY))
def test_acme_library_jws_with_kid(alg: str):
    jwa, jwk_cls = JOSEPY[alg]
    kid = "https://acme.example/acme/t1/acct/1"
    signed = acme_jws.JWS.sign(
        b"", key=jwk_cls(key=private_key(alg)), alg=jwa, nonce=b"nonce-one", url=URL, kid=kid
    )
    parsed = parse_jws(signed.json_dumps().encode())
    assert (parsed.kid, parsed.jwk, parsed.payload_json) == (kid, None, None)
    verify_jws(parsed, private_key(alg).public_key())


def test_plain_josepy_flat_serialisation():
    signed = jose.JWS.sign(
        b'{"a":1}',
        key=jose.JWKEC(key=private_key("ES256")),
        alg=jose.ES256,
        protect=frozenset({"alg", "jwk"}),
    )
    raw = json.dumps(signed.to_partial_json(flat=True)).encode()
    # josepy's own header class cannot carry nonce/url: the ACME rules refuse it, not the syntax.
    assert problem(parse_jws, raw).type is ProblemType.BAD_NONCE


def test_eddsa_signed_by_hand():
    parsed = verified(body(flat(header("EdDSA"), b'{"x":true}', alg="EdDSA")))
    assert parsed.alg == "EdDSA"
    assert parsed.signing_input == f"{parsed.protected_b64}.{parsed.payload_b64}".encode()


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_every_algorithm_round_trips_by_hand(alg: str):
    verified(body(flat(header(alg), alg=alg)))


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_tampered_payload_fails_verification(alg: str):
    jws = flat(header(alg), alg=alg)
    jws["payload"] = b64(b'{"evil":1}')
    exc = problem(verified, body(jws))
    assert (exc.type, exc.detail) == (ProblemType.MALFORMED, "JWS verification error")


# -- structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"[]", "JWS must be a JSON object"),
        (b'"jws"', "JWS must be a JSON object"),
        (b"null", "JWS must be a JSON object"),
        (b"1", "JWS must be a JSON object"),
        (b"", "JWS is not valid JSON"),
        (b"{", "JWS is not valid JSON"),
        (b"\xff\xfe{}", "JWS is not valid UTF-8"),
        (b'{"protected": "\xc3"}', "JWS is not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "JWS is not valid JSON"),
        (b"[" * 50_000, "JWS is not valid JSON"),
        (b'{"a": NaN}', "JWS is not valid JSON"),
        (b'{"a": Infinity}', "JWS is not valid JSON"),
    ],
)
def test_body_must_be_a_json_object(raw: bytes, detail: str):
    malformed(raw, detail)


def test_oversized_body_is_413():
    jws = flat(header(), b'{"pad":"' + b"a" * 70_000 + b'"}')
    exc = malformed(body(jws), "JWS larger than 65536 bytes")
    assert exc.http_status == 413
    assert parse_jws(body(jws), max_bytes=200_000).payload_json is not None


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (lambda j: j.pop("signature"), "lacks member(s) signature"),
        (lambda j: j.pop("protected"), "lacks member(s) protected"),
        (lambda j: j.update(header={"kid": "x"}), "unprotected header"),
        (lambda j: j.update(extra="1"), "members other than protected, payload and signature"),
        (lambda j: j.update(signatures=[]), "general JSON serialization"),
        (lambda j: j.update(protected=1), "protected header must be a base64url string"),
        (lambda j: j.update(payload=None), "payload must be a base64url string"),
        (lambda j: j.update(signature=["x"]), "signature must be a base64url string"),
    ],
)
def test_flattened_members(mutate, detail: str):
    jws = flat(header())
    mutate(jws)
    malformed(body(jws), detail)


def test_general_serialisation_is_refused():
    jws = flat(header())
    general = {
        "payload": jws["payload"],
        "signatures": [{"protected": jws["protected"], "signature": jws["signature"]}],
    }
    malformed(body(general), "general JSON serialization")


# -- base64url ---------------------------------------------------------------------------------

SIG_WITH_URL_CHARS = b64(b"\xfb\xff\xbf" * 30)  # encodes to '-', '_' and letters
assert "-" in SIG_WITH_URL_CHARS and "_" in SIG_WITH_URL_CHARS


@pytest.mark.parametrize(
    ("member", "value", "detail"),
    [
        ("protected", lambda v: v + "=" * (-len(v) % 4 or 4), "protected header is not canonical"),
        ("payload", lambda v: "e30=", "payload is not canonical"),
        ("payload", lambda v: "e30==", "payload is not canonical"),
        ("payload", lambda v: "e31", "payload is not canonical"),
        ("payload", lambda v: "e 30", "payload is not canonical"),
        ("payload", lambda v: "e30\n", "payload is not canonical"),
        ("payload", lambda v: "abcde", "payload is not canonical"),
        ("protected", lambda v: " " + v, "protected header is not canonical"),
        ("protected", lambda v: v[:10] + "\n" + v[10:], "protected header is not canonical"),
        ("signature", lambda v: SIG_WITH_URL_CHARS.replace("-", "+"), "signature is not canon"),
        ("signature", lambda v: SIG_WITH_URL_CHARS.replace("_", "/"), "signature is not canon"),
        ("signature", lambda v: v[:-1] + "é", "signature is not canonical"),
    ],
)
def test_strict_base64url(member: str, value, detail: str):
    jws = flat(header(), b"{}")
    jws[member] = value(jws[member])
    malformed(body(jws), detail)


def test_payload_e30_is_the_canonical_empty_object():
    assert parse_jws(body(flat(header(), b"{}"))).payload_b64 == "e30"


# -- duplicates --------------------------------------------------------------------------------


def test_duplicate_member_at_top_level():
    jws = flat(header())
    raw = (
        f'{{"protected":"{jws["protected"]}","payload":"{jws["payload"]}",'
        f'"payload":"{jws["payload"]}","signature":"{jws["signature"]}"}}'
    ).encode()
    malformed(raw, "JWS has a duplicate member 'payload'")


def test_duplicate_member_in_protected_header():
    text = json.dumps(header())[:-1] + ', "alg": "ES256"}'
    malformed(body(flat(text)), "JWS protected header has a duplicate member 'alg'")


def test_duplicate_member_nested_in_protected_jwk():
    text = json.dumps(header()).replace('"kty": "EC"', '"kty": "EC", "kty": "EC"')
    malformed(body(flat(text)), "JWS protected header has a duplicate member 'kty'")


@pytest.mark.parametrize(
    "payload",
    [b'{"a": 1, "a": 2}', b'{"csr": "x", "nested": {"b": 1, "b": 1}}', b'{"l": [{"c":1,"c":1}]}'],
)
def test_duplicate_member_in_payload(payload: bytes):
    malformed(body(flat(header(), payload)), "JWS payload has a duplicate member")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"[]", "payload must be a JSON object"),
        (b'"x"', "payload must be a JSON object"),
        (b"null", "payload must be a JSON object"),
        (b"{", "payload is not valid JSON"),
        (b"\xff", "payload is not valid UTF-8"),
        (b'{"n": NaN}', "payload is not valid JSON"),
    ],
)
def test_payload_must_be_an_object_or_empty(payload: bytes, detail: str):
    malformed(body(flat(header(), payload)), detail)


# -- protected header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("[]", "protected header must be a JSON object"),
        ("not json", "protected header is not valid JSON"),
        ("", "protected header is not valid JSON"),
    ],
)
def test_protected_header_must_be_an_object(text: str, detail: str):
    malformed(body(flat(text)), detail)


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"alg": None}, "needs a string 'alg'"),
        ({"alg": 256}, "needs a string 'alg'"),
        ({"kid": "https://acme.example/acct/1"}, "exactly one of 'jwk' and 'kid'"),
        ({"jwk": None}, "exactly one of 'jwk' and 'kid'"),
        ({"jwk": "key"}, "'jwk' must be a JSON object"),
        ({"jwk": None, "kid": ""}, "'kid' must be a non-empty string"),
        ({"jwk": None, "kid": 7}, "'kid' must be a non-empty string"),
        ({"url": None}, "needs a string 'url'"),
        ({"url": ""}, "needs a string 'url'"),
        ({"url": ["https://x"]}, "needs a string 'url'"),
        ({"crit": ["exp"]}, "uses 'crit'"),
        ({"crit": []}, "uses 'crit'"),
        ({"b64": False}, "uses 'b64'"),
    ],
)
def test_header_rules(extra: dict[str, Any], detail: str):
    malformed(body(flat(header(**extra))), detail)


@pytest.mark.parametrize(
    ("nonce", "detail"),
    [
        (None, "JWS has no anti-replay nonce"),
        ("", "JWS has an invalid anti-replay nonce"),
        ("bm9uY2U=", "JWS has an invalid anti-replay nonce"),
        ("bm9+Y2U", "JWS has an invalid anti-replay nonce"),
        ("e31", "JWS has an invalid anti-replay nonce"),
        (42, "JWS has an invalid anti-replay nonce"),
    ],
)
def test_nonce_must_be_base64url(nonce: object, detail: str):
    protected = header()
    if nonce is None:
        del protected["nonce"]
    else:
        protected["nonce"] = nonce
    exc = problem(parse_jws, body(flat(protected)))
    assert (exc.type, exc.detail) == (ProblemType.BAD_NONCE, detail)


def test_unknown_header_members_are_allowed():
    assert parse_jws(body(flat(header(typ="JOSE", cty="json")))).protected["typ"] == "JOSE"


# -- algorithms --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS512", "PS256", "RS384", "ES256K", ""])
def test_unsupported_algorithms(alg: str):
    protected = header(alg="ES256")
    protected["alg"] = alg
    exc = problem(parse_jws, body(flat(protected)))
    assert exc.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    assert exc.algorithms == ["ES256", "ES384", "ES512", "RS256", "EdDSA"]
    assert exc.to_json()["algorithms"] == list(SUPPORTED_ALGORITHMS)


def test_alg_none_with_empty_signature():
    jws = {"protected": b64(json.dumps(header(alg="none"))), "payload": b64("{}"), "signature": ""}
    assert problem(parse_jws, body(jws)).type is ProblemType.BAD_SIGNATURE_ALGORITHM


@pytest.mark.parametrize(
    ("alg", "key_alg", "detail"),
    [
        ("ES256", "P-384", "JWS algorithm ES256 requires a P-256 key, not P-384"),
        ("ES384", "ES256", "JWS algorithm ES384 requires a P-384 key, not P-256"),
        ("ES512", "ES256", "JWS algorithm ES512 requires a P-521 key, not P-256"),
        ("RS256", "ES256", "JWS algorithm RS256 requires a RSA key, not P-256"),
        ("EdDSA", "RS256", "JWS algorithm EdDSA requires a Ed25519 key, not RSA"),
        ("ES256", "EdDSA", "JWS algorithm ES256 requires a P-256 key, not Ed25519"),
    ],
)
def test_alg_key_mismatch(alg: str, key_alg: str, detail: str):
    parsed = parse_jws(body(flat(header(alg, key_alg=key_alg), alg=alg, key_alg=key_alg)))
    key = jwk_to_public_key(parsed.jwk)
    exc = problem(verify_jws, parsed, key)
    assert (exc.type, exc.detail) == (ProblemType.BAD_SIGNATURE_ALGORITHM, detail)
    assert exc.algorithms is not None
    assert problem(check_alg_matches_key, alg, key).detail == detail


def test_unsupported_key_object_is_a_mismatch():
    key = ec.generate_private_key(ec.SECP256K1()).public_key()
    exc = problem(check_alg_matches_key, "ES256", key)
    assert exc.detail == "JWS algorithm ES256 requires a P-256 key, not unsupported"


# -- signatures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "size"), [("ES256", 64), ("ES384", 96), ("ES512", 132)])
def test_ecdsa_signature_length_is_exact(alg: str, size: int):
    jws = flat(header(alg), alg=alg)
    parsed = parse_jws(body(jws))
    key = private_key(alg).public_key()
    assert len(parsed.signature) == size
    assert verify_signature(alg, key, parsed.signing_input, parsed.signature)
    for bad in (parsed.signature[:-1], parsed.signature + b"\x00", b"\x00" + parsed.signature):
        assert not verify_signature(alg, key, parsed.signing_input, bad)
    assert not verify_signature(alg, key, parsed.signing_input, b"")


def test_der_encoded_ecdsa_signature_is_refused():
    key = private_key("ES256")
    message = b"header.payload"
    der = key.sign(message, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature("ES256", key.public_key(), message, der)


@pytest.mark.parametrize("alg", ["ES256", "ES384"])
def test_zero_and_oversized_ecdsa_scalars(alg: str):
    key = private_key(alg).public_key()
    size = 32 if alg == "ES256" else 48
    assert not verify_signature(alg, key, b"m", bytes(2 * size))
    assert not verify_signature(alg, key, b"m", b"\xff" * (2 * size))


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_truncated_signatures(alg: str):
    key = private_key(alg)
    signature = raw_sign(alg, key, b"m")
    assert verify_signature(alg, key.public_key(), b"m", signature)
    assert not verify_signature(alg, key.public_key(), b"m", signature[:-1])
    assert not verify_signature(alg, key.public_key(), b"n", signature)


# -- flattened parsing shared with EAB and key change -------------------------------------------


def test_parse_flattened_names_the_object():
    exc = problem(parse_flattened, {"protected": "", "payload": ""}, "inner JWS")
    assert exc.detail == "inner JWS lacks member(s) signature"


def test_parse_flattened_does_not_apply_acme_header_rules():
    protected = header(alg="HS256", nonce=None, url=None)
    parsed = parse_flattened(flat(protected), "inner JWS")
    assert parsed.alg == "HS256" and parsed.nonce is None
