"""Where a CA key lives: the `KeyStore` port, key algorithms and key references.

"Who issues" (`certplane.ca.api.IssuerBackend`) is separate from "where the key lives" (this
module): a local CA with an HSM key is a combination, not a third backend (ARCHITECTURE §0.5).

A key is named by an opaque *ref* string whose scheme (the text before the first ``:``) says which
keystore holds it: ``soft:v1:...`` for `SoftwareKeyStore`, an RFC 7512 ``pkcs11:...`` URI for a
PKCS#11 token. Callers persist refs verbatim and never parse them.

Every key has a *binding*, the owner it was created for (``tenant:<tenant_id>``,
``platform:root``). `KeyStore.load` takes the binding of the caller's context and refuses a ref
created for any other, which is how one tenant's issuance can never sign with another's key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import KeyBindingError, KeystoreError

__all__ = [
    "KeyAlgorithm",
    "KeyBindingError",
    "KeyStore",
    "KeyStoreRouter",
    "KeystoreError",
    "PublicKey",
    "SigningKey",
    "StoredKey",
    "check_binding",
    "key_algorithm",
    "platform_binding",
    "ref_scheme",
    "tenant_binding",
]

SigningKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""A CA signing key. A PKCS#11 key subclasses one of these and signs inside the token."""

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_BINDING = re.compile(r"[a-z][a-z0-9-]*:[A-Za-z0-9._:-]{1,200}")


class KeyAlgorithm(StrEnum):
    """The CA key algorithms certplane creates (NIST curves per RFC 5480, RSA per RFC 8017)."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


_CURVES: Mapping[str, KeyAlgorithm] = {
    ec.SECP256R1.name: KeyAlgorithm.EC_P256,
    ec.SECP384R1.name: KeyAlgorithm.EC_P384,
}
_RSA_SIZES: Mapping[int, KeyAlgorithm] = {
    2048: KeyAlgorithm.RSA_2048,
    3072: KeyAlgorithm.RSA_3072,
    4096: KeyAlgorithm.RSA_4096,
}


def key_algorithm(public_key: PublicKey) -> KeyAlgorithm:
    """The `KeyAlgorithm` of a public key.

    Raises:
        KeystoreError: the curve or modulus size is not one certplane uses.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        found = _CURVES.get(public_key.curve.name)
    else:
        found = _RSA_SIZES.get(public_key.key_size)
    if found is None:
        raise KeystoreError("unsupported key algorithm")
    return found


@dataclass(frozen=True)
class StoredKey:
    """A key held by a keystore: the ref to persist and the public key to certify."""

    ref: str
    public_key: PublicKey

    def __repr__(self) -> str:
        digest = hashlib.sha256(self.ref.encode()).hexdigest()[:16]
        return f"StoredKey(scheme={ref_scheme(self.ref)!r}, ref_sha256={digest})"


class KeyStore(Protocol):
    """Where keys live. Methods may block (HSM round trips, RSA key generation): async callers
    run them with `asyncio.to_thread`."""

    def generate(
        self, algorithm: KeyAlgorithm, *, binding: str, placement: str | None = None
    ) -> StoredKey:
        """Create a key owned by `binding` and return its ref.

        `placement` names where the key must live when the store offers a choice (a PKCS#11
        token dedicated to the owner); None is the store's default place.

        Raises:
            ValueError: `binding` is malformed (see `check_binding`).
            KeystoreError: the key could not be created.
        """
        ...

    def load(self, ref: str, *, binding: str) -> SigningKey:
        """Return a signing key for `ref`.

        Raises:
            KeyBindingError: `ref` was not created for `binding`.
            KeystoreError: `ref` is malformed, unknown or cannot be opened.
        """
        ...


def check_binding(binding: str) -> str:
    """Return `binding` if it has the form ``<kind>:<id>`` (e.g. ``tenant:0f3a...``).

    Raises:
        ValueError: it does not.
    """
    if not _BINDING.fullmatch(binding):
        raise ValueError(f"malformed key binding {binding!r}; expected '<kind>:<id>'")
    return binding


def tenant_binding(tenant_id: str) -> str:
    """The binding of keys owned by one tenant."""
    return check_binding(f"tenant:{tenant_id}")


def platform_binding(name: str) -> str:
    """The binding of platform-wide keys (``platform:root``, ``platform:tls``)."""
    return check_binding(f"platform:{name}")


def ref_scheme(ref: str) -> str:
    """The scheme of a key ref: ``soft`` or ``pkcs11`` (RFC 7512 §2.3)."""
    scheme, sep, _ = ref.partition(":")
    if not sep or not scheme:
        raise KeystoreError("malformed key ref: no scheme")
    return scheme


class KeyStoreRouter:
    """A `KeyStore` that sends each ref to the store of its scheme.

    New keys go to the store named by `generate_in`; refs made by any registered store keep
    loading, so moving new CA keys to PKCS#11 leaves existing software refs usable.
    """

    def __init__(self, stores: Mapping[str, KeyStore], *, generate_in: str) -> None:
        if generate_in not in stores:
            raise ValueError(f"no keystore registered for scheme {generate_in!r}")
        self._stores = dict(stores)
        self._generate_in = generate_in

    def generate(
        self, algorithm: KeyAlgorithm, *, binding: str, placement: str | None = None
    ) -> StoredKey:
        """Create the key in the store chosen for new keys."""
        store = self._stores[self._generate_in]
        return store.generate(algorithm, binding=binding, placement=placement)

    def load(self, ref: str, *, binding: str) -> SigningKey:
        """Load from the store registered for the ref's scheme."""
        store = self._stores.get(ref_scheme(ref))
        if store is None:
            raise KeystoreError(f"no keystore registered for key ref scheme {ref_scheme(ref)!r}")
        return store.load(ref, binding=binding)
