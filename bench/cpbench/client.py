"""A lean asyncio ACME client for benchmarking (RFC 8555).

ES256 flattened JWS signed with ``cryptography`` directly, one shared aiohttp session with
keep-alive connections, nonces taken from every response's ``Replay-Nonce`` (a HEAD newNonce
only when the pool is empty). The transport tracks every request in flight, so a supervisor can
tell a server that hangs from one that is merely slow.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

JOSE = "application/jose+json"
BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
MAX_NONCE_RETRIES = 3


class AcmeError(Exception):
    """The server answered something the happy path does not expect."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    nums = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(nums.x.to_bytes(32, "big")),
        "y": b64(nums.y.to_bytes(32, "big")),
    }


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, sort_keys=True, separators=(",", ":")
    )
    return b64(hashlib.sha256(canonical.encode()).digest())


def es256(key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_csr(name: str) -> bytes:
    """A DER CSR for ``name`` (CN and SAN) with a fresh P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def insecure_ssl() -> ssl.SSLContext:
    """Pebble's (and our) self-signed loopback certificate: no verification, loopback only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class Transport:
    """One keep-alive session; counts requests and knows what is in flight since when."""

    def __init__(self, request_timeout: float) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeout = request_timeout
        self._ids = itertools.count()
        self.inflight: dict[int, tuple[str, float]] = {}
        self.requests = 0

    async def __aenter__(self) -> Transport:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ssl=insecure_ssl())
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, url: str, label: str, **kwargs: Any) -> Reply:
        assert self._session is not None
        rid = next(self._ids)
        self.inflight[rid] = (f"{method} {label}", time.monotonic())
        try:
            async with self._session.request(method, url, **kwargs) as resp:
                body = await resp.read()
                return Reply(resp.status, resp.headers, body)
        finally:
            del self.inflight[rid]
            self.requests += 1

    def stuck(self, older_than: float) -> list[tuple[str, float]]:
        """Requests in flight for more than ``older_than`` seconds: (label, age)."""
        now = time.monotonic()
        return [(label, now - t) for label, t in self.inflight.values() if now - t > older_than]


class Account:
    """One ACME account (one P-256 key) at one directory; ``post`` signs and sends."""

    def __init__(self, transport: Transport, directory: dict[str, Any]) -> None:
        self.transport = transport
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = public_jwk(self.key)
        self.thumbprint = thumbprint(self.jwk)
        self.kid: str | None = None
        self._nonces: list[str] = []

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint}"

    async def register(self) -> None:
        reply = await self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True}, "acct"
        )
        if reply.status not in (200, 201):
            raise AcmeError(f"newAccount: HTTP {reply.status} {reply.body[:300]!r}")
        self.kid = reply.headers["Location"]

    async def post(self, url: str, payload: dict[str, Any] | None, label: str) -> Reply:
        """POST a JWS (``None`` is POST-as-GET); a badNonce is retried with the fresh nonce."""
        raw = b"" if payload is None else json.dumps(payload).encode()
        for _ in range(MAX_NONCE_RETRIES):
            body = self._sign(url, raw, await self._nonce())
            reply = await self.transport.request(
                "POST", url, label, data=body, headers={"Content-Type": JOSE}
            )
            self._keep_nonce(reply)
            if not (reply.status == 400 and BAD_NONCE.encode() in reply.body):
                return reply
        raise AcmeError(f"{label}: badNonce {MAX_NONCE_RETRIES} times in a row")

    async def get_json(self, url: str, label: str) -> dict[str, Any]:
        """POST-as-GET and decode; anything but 200 is an `AcmeError`."""
        reply = await self.post(url, None, label)
        if reply.status != 200:
            raise AcmeError(f"{label}: HTTP {reply.status} {reply.body[:300]!r}")
        return reply.json()

    def _sign(self, url: str, payload: bytes, nonce: str) -> bytes:
        header: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if self.kid is None:
            header["jwk"] = self.jwk
        else:
            header["kid"] = self.kid
        protected = b64(json.dumps(header, separators=(",", ":")).encode())
        encoded = b64(payload)
        signature = es256(self.key, f"{protected}.{encoded}".encode())
        return json.dumps(
            {"protected": protected, "payload": encoded, "signature": b64(signature)}
        ).encode()

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        reply = await self.transport.request("HEAD", self.directory["newNonce"], "new-nonce")
        nonce = reply.headers.get("Replay-Nonce")
        if not nonce:
            raise AcmeError(f"newNonce: HTTP {reply.status} without Replay-Nonce")
        return str(nonce)

    def _keep_nonce(self, reply: Reply) -> None:
        nonce = reply.headers.get("Replay-Nonce")
        if nonce:
            self._nonces.append(str(nonce))
