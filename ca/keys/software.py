"""`SoftwareKeyStore`: CA keys as envelope-encrypted PKCS#8 held in the ref itself.

The ref is ``soft:v1:`` + base64url (RFC 4648 §5, unpadded) of a sealed blob
(`certplane.ca.keys.envelope`) whose plaintext is the PKCS#8 DER private key (RFC 5208) and whose
context is ``b"certplane-key:" + binding``. The store keeps no state besides a small in-process
cache, so any replica holding the master key can load any ref it is given.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .api import (
    KeyAlgorithm,
    KeyStore,
    SigningKey,
    StoredKey,
    check_binding,
    key_algorithm,
)
from .envelope import MasterKey, open_sealed, seal
from .errors import ContextMismatchError, KeyBindingError, KeystoreError

__all__ = ["SOFTWARE_REF_PREFIX", "SoftwareKeyStore", "generate_private_key"]

SOFTWARE_REF_PREFIX = "soft:v1:"
_CONTEXT_PREFIX = b"certplane-key:"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_RSA_PUBLIC_EXPONENT = 65537
_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
}
_RSA_BITS: dict[KeyAlgorithm, int] = {
    KeyAlgorithm.RSA_2048: 2048,
    KeyAlgorithm.RSA_3072: 3072,
    KeyAlgorithm.RSA_4096: 4096,
}


def generate_private_key(algorithm: KeyAlgorithm) -> SigningKey:
    """A new software key (RSA with e = 65537, RFC 8017 §3.1)."""
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm])
    return rsa.generate_private_key(_RSA_PUBLIC_EXPONENT, _RSA_BITS[algorithm])


class _Entry(NamedTuple):
    binding: str
    key: SigningKey


class _KeyCache:
    """A small thread-safe LRU of unsealed keys; entries remember the binding they opened under."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(ref)
            if entry is not None:
                self._entries.move_to_end(ref)
            return entry

    def put(self, ref: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[ref] = entry
            self._entries.move_to_end(ref)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class SoftwareKeyStore:
    """A `KeyStore` whose keys are sealed under the platform master key.

    Unsealed keys are cached by ref (issuance signs often); a cache hit is checked against the
    caller's binding exactly like a fresh unseal.
    """

    scheme = "soft"

    def __init__(self, master: MasterKey, *, cache_size: int = 128) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._master = master
        self._cache = _KeyCache(cache_size)

    def __repr__(self) -> str:
        return f"SoftwareKeyStore(master={self._master!r})"

    def generate(
        self, algorithm: KeyAlgorithm, *, binding: str, placement: str | None = None
    ) -> StoredKey:
        """Create a key owned by `binding`; the returned ref is the only copy of it.

        Raises:
            KeystoreError: a `placement` was asked for (software keys live in their ref).
        """
        check_binding(binding)
        if placement is not None:
            raise KeystoreError("the software keystore has no placements (dedicated tokens)")
        key = generate_private_key(KeyAlgorithm(algorithm))
        blob = seal(self._master, _pkcs8(key), context=_context(binding))
        ref = SOFTWARE_REF_PREFIX + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")
        self._cache.put(ref, _Entry(binding, key))
        return StoredKey(ref=ref, public_key=key.public_key())

    def load(self, ref: str, *, binding: str) -> SigningKey:
        """Return the key of `ref` if it was created for `binding`.

        Raises:
            KeyBindingError: `ref` belongs to another binding (cached or not).
            KeystoreError: `ref` is not a software ref, is corrupt, or was sealed under
                another master key.
        """
        check_binding(binding)
        entry = self._cache.get(ref)
        if entry is None:
            entry = _Entry(binding, self._unseal(ref, binding))
            self._cache.put(ref, entry)
        if entry.binding != binding:
            raise KeyBindingError(f"key ref is not bound to {binding}")
        return entry.key

    def _unseal(self, ref: str, binding: str) -> SigningKey:
        blob = _decode_ref(ref)
        try:
            der = open_sealed(self._master, blob, context=_context(binding))
        except ContextMismatchError:
            raise KeyBindingError(f"key ref is not bound to {binding}") from None
        return _load_pkcs8(der)


def _context(binding: str) -> bytes:
    return _CONTEXT_PREFIX + binding.encode("utf-8")


def _pkcs8(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _decode_ref(ref: str) -> bytes:
    """The sealed blob inside a ``soft:v1:`` ref (strict unpadded base64url)."""
    if not ref.startswith(SOFTWARE_REF_PREFIX):
        raise KeystoreError("not a software key ref (expected prefix 'soft:v1:')")
    body = ref[len(SOFTWARE_REF_PREFIX) :]
    if not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise KeystoreError("malformed software key ref")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _load_pkcs8(der: bytes) -> SigningKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise KeystoreError("sealed key is not a valid PKCS#8 private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeystoreError("sealed key has an unsupported type")
    key_algorithm(key.public_key())
    return key


if TYPE_CHECKING:

    def _conforms(store: SoftwareKeyStore) -> KeyStore:
        """Static check that `SoftwareKeyStore` satisfies the `KeyStore` protocol."""
        return store
