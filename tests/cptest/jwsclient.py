"""A hand-built ACME client for negative tests: every byte of a request can be wrong on purpose.

It signs with ``cryptography`` directly (never josepy), so tests control the exact encoding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JOSE = "application/jose+json"
PROBLEM = "application/problem+json"
ERR = "urn:ietf:params:acme:error:"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def public_jwk(key: PrivateKey) -> dict[str, str]:
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        size = (pub.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[pub.curve.key_size]
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64(nums.x.to_bytes(size, "big")),
            "y": b64(nums.y.to_bytes(size, "big")),
        }
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": b64(_uint(nums.n)), "e": b64(_uint(nums.e))}
    return {"kty": "OKP", "crv": "Ed25519", "x": b64(pub.public_bytes_raw())}


def thumbprint(jwk: dict[str, str]) -> str:
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    canonical = {k: jwk[k] for k in members[jwk["kty"]]}
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return b64(hashlib.sha256(data).digest())


def default_alg(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    return "RS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"


def sign(key: PrivateKey, alg: str, signing_input: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512}
        der = key.sign(signing_input, ec.ECDSA(digest.get(alg, hashes.SHA256)()))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(signing_input)


def flattened(
    key: PrivateKey, protected: dict[str, Any], payload: bytes, *, alg: str | None = None
) -> dict[str, str]:
    header = {"alg": alg or default_alg(key), **protected}
    protected_b64 = b64(json.dumps(header).encode())
    payload_b64 = b64(payload)
    sig = sign(key, header["alg"], f"{protected_b64}.{payload_b64}".encode())
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64(sig)}


def eab_binding(
    kid: str, hmac_key_b64: str, jwk: dict[str, str], url: str, alg: str = "HS256"
) -> dict[str, str]:
    key = base64.urlsafe_b64decode(hmac_key_b64 + "=" * (-len(hmac_key_b64) % 4))
    protected_b64 = b64(json.dumps({"alg": alg, "kid": kid, "url": url}).encode())
    payload_b64 = b64(json.dumps(jwk).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(key, f"{protected_b64}.{payload_b64}".encode(), digest).digest()
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64(mac)}


@dataclass
class RawClient:
    """One account key at one tenant directory; ``kid`` is set once an account exists."""

    directory_url: str
    key: PrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str | None = None
    session: requests.Session = field(default_factory=requests.Session)
    _directory: dict[str, Any] | None = None

    @property
    def directory(self) -> dict[str, Any]:
        if self._directory is None:
            self._directory = self.session.get(self.directory_url, timeout=30).json()
        return self._directory

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key)

    def nonce(self) -> str:
        return str(
            self.session.head(self.directory["newNonce"], timeout=30).headers["Replay-Nonce"]
        )

    def body(
        self,
        url: str,
        payload: Any,
        *,
        use_jwk: bool | None = None,
        extra: dict[str, Any] | None = None,
        alg: str | None = None,
    ) -> dict[str, str]:
        raw = (
            b""
            if payload is None
            else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        )
        protected: dict[str, Any] = {"nonce": self.nonce(), "url": url}
        jwk_mode = self.kid is None if use_jwk is None else use_jwk
        if jwk_mode:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = self.kid
        protected.update(extra or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        return flattened(self.key, protected, raw, alg=alg)

    def post(self, url: str, payload: Any = None, **kwargs: Any) -> requests.Response:
        body = self.body(url, payload, **kwargs)
        return self.post_raw(url, json.dumps(body).encode())

    def post_raw(self, url: str, data: bytes, content_type: str = JOSE) -> requests.Response:
        return self.session.post(url, data=data, headers={"Content-Type": content_type}, timeout=60)

    def new_account(self, eab: Any = None, **fields: Any) -> requests.Response:
        url = self.directory["newAccount"]
        payload: dict[str, Any] = {"termsOfServiceAgreed": True, **fields}
        if eab is not None:
            payload["externalAccountBinding"] = eab_binding(eab.kid, eab.hmac_key, self.jwk, url)
        response = self.post(url, payload, use_jwk=True)
        if response.status_code in (200, 201):
            self.kid = response.headers["Location"]
        return response

    def new_order(self, *names: str, ip: tuple[str, ...] = ()) -> requests.Response:
        identifiers = [{"type": "dns", "value": n} for n in names]
        identifiers += [{"type": "ip", "value": a} for a in ip]
        return self.post(self.directory["newOrder"], {"identifiers": identifiers})

    def key_authorization(self, token: str) -> str:
        return f"{token}.{thumbprint(self.jwk)}"


def problem(response: requests.Response) -> dict[str, Any]:
    """The problem document of an error response, after the baseline checks every error meets."""
    assert response.status_code >= 400, response.text
    assert response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers
    doc: dict[str, Any] = response.json()
    assert doc["status"] == response.status_code
    assert doc["type"].startswith(ERR)
    return doc
