"""A strict JWS pre-parser and verifier for ACME (RFC 7515, RFC 7517, RFC 7518, RFC 8555 §6.2).

Built on ``cryptography`` and ``json`` only. General-purpose JOSE libraries are lenient where ACME
must not be: they accept padded or non-url-safe base64, merge unprotected headers into the
protected one, or fail deep inside the crypto on an alg/key mismatch. Here every input is checked
before use and every refusal is an :class:`AcmeProblem` with a precise detail that never contains
key material.

The request ladder (``wfe/jws.py``) composes these pieces: :func:`parse_jws` → key lookup
(:func:`jwk_to_public_key` or the account's stored key) → :func:`check_alg_matches_key` →
:func:`verify_jws` → nonce → url.

Decisions:

* A body larger than ``max_bytes`` is ``malformed`` with HTTP status 413.
* A missing or undecodable ``nonce`` is ``badNonce`` (RFC 8555 §6.5, as Boulder and Pebble).
* A JWK whose structure is wrong (missing member, bad encoding, wrong length, private members) is
  ``malformed``; a well-formed JWK of a kind we do not accept (``kty``, ``crv``, point off the
  curve, oversized RSA) is ``badPublicKey``.
* An unsupported ``alg`` on an externalAccountBinding is ``malformed``, as Boulder: the
  ``algorithms`` field of ``badSignatureAlgorithm`` lists account-JWS algorithms, not MACs.
* An unknown EAB ``kid`` and a wrong MAC are both ``unauthorized`` with one detail, so key ids
  cannot be probed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from certplane.policy.keys import RSA_MAX_BITS, RSA_MAX_EXPONENT_BITS
from certplane.server.errors import AcmeProblem, ProblemType, malformed, unauthorized

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

SUPPORTED_ALGORITHMS: Final = ("ES256", "ES384", "ES512", "RS256", "EdDSA")
EAB_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
MAX_JWS_BYTES: Final = 64 * 1024

_FLATTENED_MEMBERS = frozenset({"protected", "payload", "signature"})
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_EC_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_CURVE_LABELS = {curve.name: label for label, (curve, _) in _EC_CURVES.items()}
# NOTE(algorithms): each algorithm's key type (RFC 7518 §3.1, RFC 8037 §3.1) and ECDSA hash.
_ALG_KEY_TYPE = dict(ES256="P-256", ES384="P-384", ES512="P-521", RS256="RSA", EdDSA="Ed25519")
_ECDSA_HASHES: dict[str, hashes.HashAlgorithm] = dict(
    ES256=hashes.SHA256(), ES384=hashes.SHA384(), ES512=hashes.SHA512()
)
_ECDSA_ALGORITHMS = {alg: ec.ECDSA(digest) for alg, digest in _ECDSA_HASHES.items()}
_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_EAB = "externalAccountBinding"
_EAB_FAILED = "external account binding could not be verified"


def _bad_public_key(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.BAD_PUBLIC_KEY, detail)


def _bad_algorithm(detail: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.BAD_SIGNATURE_ALGORITHM, detail, algorithms=list(SUPPORTED_ALGORITHMS)
    )


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _is_b64url(value: str) -> bool:
    """Alphabet, length and canonical trailing bits (RFC 4648 §5, §3.5)."""
    if not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        return False
    data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return b64url_encode(data) == value


def b64url_decode(value: object, what: str) -> bytes:
    """Strict base64url (RFC 7515 §2, RFC 4648 §5).

    Alphabet ``[A-Za-z0-9_-]`` only: no padding, no whitespace, no ``+``/``/``; and canonical, so
    the unused trailing bits are zero and every value has exactly one encoding.
    """
    if not isinstance(value, str):
        raise malformed(f"{what} must be a base64url string")
    if not _is_b64url(value):
        raise malformed(f"{what} is not canonical unpadded base64url")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class _DuplicateMember(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: member names must be unique (RFC 7493 §2.3, RFC 7515 §5.2)."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMember(name)
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(data: bytes, what: str) -> Any:
    """Parse UTF-8 JSON (RFC 8259) refusing duplicate member names and NaN/Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed(f"{what} is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_refuse_constant)
    except _DuplicateMember as duplicate:
        raise malformed(f"{what} has a duplicate member {str(duplicate)[:64]!r}") from None
    except (ValueError, RecursionError):
        raise malformed(f"{what} is not valid JSON") from None


@dataclass(frozen=True)
class ParsedJws:
    """A structurally valid flattened JWS; nothing about it is verified yet.

    ``payload_json`` is the parsed payload, or ``None`` for an empty payload (POST-as-GET,
    RFC 8555 §6.3).
    """

    protected: dict[str, Any]
    protected_b64: str
    payload: bytes
    payload_b64: str
    signature: bytes
    payload_json: dict[str, Any] | None = None

    @property
    def signing_input(self) -> bytes:
        """ASCII(BASE64URL(protected) || '.' || BASE64URL(payload)) (RFC 7515 §5.1)."""
        return f"{self.protected_b64}.{self.payload_b64}".encode("ascii")

    @property
    def alg(self) -> str:
        return cast(str, self.protected["alg"])

    @property
    def jwk(self) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", self.protected.get("jwk"))

    @property
    def kid(self) -> str | None:
        return cast("str | None", self.protected.get("kid"))

    @property
    def nonce(self) -> str | None:
        return cast("str | None", self.protected.get("nonce"))

    @property
    def url(self) -> str | None:
        return cast("str | None", self.protected.get("url"))


def parse_jws(body: bytes, *, max_bytes: int = MAX_JWS_BYTES) -> ParsedJws:
    """Parse an ACME request body: a flattened JWS (RFC 8555 §6.2, RFC 7515 §7.2.2).

    Checks structure, encodings, the ``alg`` allow-list, exactly one of ``jwk``/``kid``, and the
    presence of ``nonce`` and ``url``. Raises :class:`AcmeProblem`.
    """
    if len(body) > max_bytes:
        raise AcmeProblem(ProblemType.MALFORMED, f"JWS larger than {max_bytes} bytes", status=413)
    jws = parse_flattened(loads_strict(body, "JWS"), "JWS")
    _check_account_header(jws.protected)
    return jws


def parse_flattened(obj: object, what: str) -> ParsedJws:
    """A flattened JWS (RFC 7515 §7.2.2) with exactly protected, payload and signature.

    The rules every JWS shares; ACME header rules are the caller's (e.g. a key change's inner
    JWS, RFC 8555 §7.3.5). ``what`` names the object in problem details.
    """
    if not isinstance(obj, dict):
        raise malformed(f"{what} must be a JSON object")
    _check_members(obj, what)
    protected_b64: str = obj["protected"]
    protected = loads_strict(
        b64url_decode(protected_b64, f"{what} protected header"), f"{what} protected header"
    )
    if not isinstance(protected, dict):
        raise malformed(f"{what} protected header must be a JSON object")
    _check_common_header(protected, what)
    payload_b64: str = obj["payload"]
    payload = b64url_decode(payload_b64, f"{what} payload")
    signature = b64url_decode(obj["signature"], f"{what} signature")
    return ParsedJws(
        protected, protected_b64, payload, payload_b64, signature, _payload_json(payload, what)
    )


def _check_members(obj: dict[str, Any], what: str) -> None:
    """Only the flattened members: no ``header`` (RFC 8555 §6.2), no ``signatures``."""
    if "signatures" in obj:
        raise malformed(f"{what} uses the general JSON serialization: use the flattened form")
    if "header" in obj:
        raise malformed(f"{what} has an unprotected header: every parameter must be protected")
    if set(obj) - _FLATTENED_MEMBERS:
        raise malformed(f"{what} has members other than protected, payload and signature")
    missing = sorted(_FLATTENED_MEMBERS - set(obj))
    if missing:
        raise malformed(f"{what} lacks member(s) {', '.join(missing)}")


def _check_common_header(protected: dict[str, Any], what: str) -> None:
    """``alg`` is a string; no extensions: ``crit`` (RFC 7515 §4.1.11), ``b64`` (RFC 7797)."""
    if not isinstance(protected.get("alg"), str):
        raise malformed(f"{what} protected header needs a string 'alg'")
    if "crit" in protected:
        raise malformed(f"{what} uses 'crit': no JWS extensions are supported")
    if "b64" in protected:
        raise malformed(f"{what} uses 'b64': unencoded payloads are not supported")


def _payload_json(payload: bytes, what: str) -> dict[str, Any] | None:
    """Every ACME payload is a JSON object, or empty for POST-as-GET (RFC 8555 §6.3)."""
    if not payload:
        return None
    value = loads_strict(payload, f"{what} payload")
    if not isinstance(value, dict):
        raise malformed(f"{what} payload must be a JSON object")
    return value


def _check_account_header(protected: dict[str, Any]) -> None:
    """RFC 8555 §6.2: supported ``alg``, exactly one of ``jwk``/``kid``, ``nonce``, ``url``."""
    check_algorithm(protected["alg"])
    has_jwk, has_kid = "jwk" in protected, "kid" in protected
    if has_jwk == has_kid:
        raise malformed("JWS protected header must have exactly one of 'jwk' and 'kid'")
    if has_jwk and not isinstance(protected["jwk"], dict):
        raise malformed("JWS 'jwk' must be a JSON object")
    if has_kid and not (isinstance(protected["kid"], str) and protected["kid"]):
        raise malformed("JWS 'kid' must be a non-empty string")
    _check_nonce(protected.get("nonce"))
    _require_url(protected, "JWS")


def _check_nonce(nonce: object) -> None:
    """A non-empty base64url octet string (RFC 8555 §6.5); redeeming it is the caller's job."""
    if nonce is None:
        raise AcmeProblem(ProblemType.BAD_NONCE, "JWS has no anti-replay nonce")
    if not isinstance(nonce, str) or not nonce or not _is_b64url(nonce):
        raise AcmeProblem(ProblemType.BAD_NONCE, "JWS has an invalid anti-replay nonce")


def _require_url(protected: dict[str, Any], what: str) -> None:
    """``url`` names the resource (RFC 8555 §6.4); comparing it is the caller's job."""
    url = protected.get("url")
    if not isinstance(url, str) or not url:
        raise malformed(f"{what} protected header needs a string 'url'")


def jwk_to_public_key(jwk: object) -> PublicKey:
    """A public key from a JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2): EC, RSA or Ed25519."""
    if not isinstance(jwk, dict):
        raise malformed("jwk must be a JSON object")
    if any(member in jwk for member in _PRIVATE_JWK_MEMBERS):
        raise malformed("private key material in jwk")
    loader = _JWK_LOADERS.get(_jwk_string(jwk, "kty"))
    if loader is None:
        raise _bad_public_key("unsupported jwk key type: expected EC, RSA or OKP")
    return loader(jwk)


def _jwk_string(jwk: dict[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise malformed(f"jwk member {name!r} must be a string")
    return value


def _jwk_octets(jwk: dict[str, Any], name: str, size: int) -> bytes:
    """A fixed-length member: EC coordinates are full length (RFC 7518 §6.2.1.2)."""
    data = b64url_decode(jwk.get(name), f"jwk member {name!r}")
    if len(data) != size:
        raise malformed(f"jwk member {name!r} must be {size} octets")
    return data


def _jwk_uint(jwk: dict[str, Any], name: str) -> int:
    """Base64urlUInt in its minimal form (RFC 7518 §2), so each key has one encoding."""
    data = b64url_decode(jwk.get(name), f"jwk member {name!r}")
    if not data or data[0] == 0:
        raise malformed(f"jwk member {name!r} must be a minimal-length unsigned integer")
    return int.from_bytes(data, "big")


def _ec_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    crv = _jwk_string(jwk, "crv")
    if crv not in _EC_CURVES:
        raise _bad_public_key("unsupported EC curve: expected P-256, P-384 or P-521")
    curve, size = _EC_CURVES[crv]
    x = int.from_bytes(_jwk_octets(jwk, "x", size), "big")
    y = int.from_bytes(_jwk_octets(jwk, "y", size), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise _bad_public_key("EC point is not on the curve") from None


def _rsa_key(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    """Bounded before use: verifying with a huge modulus or exponent costs real CPU."""
    n, e = _jwk_uint(jwk, "n"), _jwk_uint(jwk, "e")
    if n.bit_length() > RSA_MAX_BITS or e.bit_length() > RSA_MAX_EXPONENT_BITS:
        raise _bad_public_key(f"RSA key too large: at most {RSA_MAX_BITS} bits")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise _bad_public_key("invalid RSA public key") from None


def _okp_key(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    if _jwk_string(jwk, "crv") != "Ed25519":
        raise _bad_public_key("unsupported OKP curve: expected Ed25519")
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(_jwk_octets(jwk, "x", 32))
    except ValueError:
        raise _bad_public_key("invalid Ed25519 public key") from None


_JWK_LOADERS: dict[str, Callable[[dict[str, Any]], PublicKey]] = {
    "EC": _ec_key,
    "RSA": _rsa_key,
    "OKP": _okp_key,
}


def _key_type(key: object) -> str:
    """The key's label in :data:`_ALG_KEY_TYPE` terms, or 'unsupported'."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVE_LABELS.get(key.curve.name, "unsupported")
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    return "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "unsupported"


def _uint_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_key_to_jwk(key: object) -> dict[str, str]:
    """The canonical public JWK: required members only (RFC 7638 §3.2), minimal encodings."""
    key_type = _key_type(key)
    if isinstance(key, ec.EllipticCurvePublicKey) and key_type != "unsupported":
        size = _EC_CURVES[key_type][1]
        numbers = key.public_numbers()
        x, y = (b64url_encode(v.to_bytes(size, "big")) for v in (numbers.x, numbers.y))
        return {"crv": key_type, "kty": "EC", "x": x, "y": y}
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        e, n = b64url_encode(_uint_bytes(rsa_numbers.e)), b64url_encode(_uint_bytes(rsa_numbers.n))
        return {"e": e, "kty": "RSA", "n": n}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(key.public_bytes_raw())}
    raise _bad_public_key("unsupported key type: expected EC P-256/P-384/P-521, RSA or Ed25519")


def key_thumbprint(key: object) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(public_key_to_jwk(key), sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def jwk_thumbprint(jwk: object) -> str:
    """RFC 7638 thumbprint of a JWK, validated first; optional members do not count."""
    return key_thumbprint(jwk_to_public_key(jwk))


def check_algorithm(alg: object) -> None:
    """``alg`` must be one we verify (RFC 8555 §6.2: never ``none`` nor a MAC)."""
    if alg not in SUPPORTED_ALGORITHMS:
        shown = alg[:32] if isinstance(alg, str) else "?"
        raise _bad_algorithm(f"unsupported JWS algorithm {shown!r}")


def check_alg_matches_key(alg: str, key: object) -> None:
    """ES256/P-256, ES384/P-384, ES512/P-521, RS256/RSA, EdDSA/Ed25519 (RFC 7518 §3.4, RFC 8037)."""
    check_algorithm(alg)
    expected, actual = _ALG_KEY_TYPE[alg], _key_type(key)
    if expected != actual:
        raise _bad_algorithm(f"JWS algorithm {alg} requires a {expected} key, not {actual}")


def verify_signature(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is valid. ECDSA signatures are raw ``r || s`` (RFC 7518 §3.4).

    Raises :class:`AcmeProblem` (badSignatureAlgorithm) if ``alg`` does not fit ``key``.
    """
    check_alg_matches_key(alg, key)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            _verify_ecdsa(alg, key, signing_input, signature)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


def _verify_ecdsa(
    alg: str, key: ec.EllipticCurvePublicKey, signing_input: bytes, signature: bytes
) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is a valid fixed-length ``r || s``."""
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        raise InvalidSignature
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_ALGORITHMS[alg])


def verify_jws(jws: ParsedJws, key: PublicKey) -> None:
    """Algorithm, then signature; a bad signature is ``malformed`` (RFC 8555 §6.2)."""
    if not verify_signature(jws.alg, key, jws.signing_input, jws.signature):
        raise malformed("JWS verification error")


@dataclass(frozen=True)
class ParsedEab:
    """An externalAccountBinding whose structure is checked and whose MAC is not, yet."""

    kid: str
    alg: str
    signing_input: bytes
    mac: bytes


def parse_eab(eab_obj: object, *, outer_url: str, outer_jwk: Mapping[str, Any]) -> ParsedEab:
    """RFC 8555 §7.3.4 steps 1, 2 and 5: a flattened JWS with a MAC ``alg``, a ``kid``, no
    ``nonce``, the outer ``url``, and the account key (the outer ``jwk``) as payload."""
    jws = parse_flattened(eab_obj, _EAB)
    header = jws.protected
    if jws.alg not in EAB_ALGORITHMS:
        raise malformed(f"{_EAB} 'alg' must be one of {', '.join(EAB_ALGORITHMS)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed(f"{_EAB} protected header needs a non-empty string 'kid'")
    if "nonce" in header:
        raise malformed(f"{_EAB} protected header must not contain a 'nonce'")
    if header.get("url") != outer_url:
        raise malformed(f"{_EAB} 'url' must equal the request URL")
    _check_eab_payload(jws.payload_json, outer_jwk)
    return ParsedEab(kid, jws.alg, jws.signing_input, jws.signature)


def _check_eab_payload(payload: dict[str, Any] | None, outer_jwk: Mapping[str, Any]) -> None:
    """The payload is the same key (RFC 7638 thumbprint) and the same JWK, member for member."""
    if payload is None or jwk_thumbprint(payload) != jwk_thumbprint(dict(outer_jwk)):
        raise malformed(f"{_EAB} payload must be the account key (the outer 'jwk')")
    if payload != dict(outer_jwk):
        raise malformed(f"{_EAB} payload must repeat the outer 'jwk' exactly")


def verify_eab_mac(parsed: ParsedEab, hmac_key: bytes) -> bool:
    """RFC 8555 §7.3.4 step 4, compared in constant time."""
    expected = hmac.new(hmac_key, parsed.signing_input, _HMAC_DIGESTS[parsed.alg]).digest()
    return hmac.compare_digest(expected, parsed.mac)


def verify_eab(
    outer_jwk: Mapping[str, Any],
    eab_jws: object,
    hmac_key_lookup: Callable[[str], bytes | None],
    *,
    outer_url: str,
) -> str:
    """Parse, look the MAC key up by ``kid``, verify; return the ``kid`` (RFC 8555 §7.3.4)."""
    parsed = parse_eab(eab_jws, outer_url=outer_url, outer_jwk=outer_jwk)
    hmac_key = hmac_key_lookup(parsed.kid)
    if hmac_key is None or not verify_eab_mac(parsed, hmac_key):
        raise unauthorized(_EAB_FAILED)
    return parsed.kid
