"""The KeyStore contract, run against every backend in KEYSTORE_BACKENDS; software specifics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from certplane.ca.keys.api import (
    KeyAlgorithm,
    KeyBindingError,
    KeyStore,
    KeystoreError,
    KeyStoreRouter,
    PublicKey,
    SigningKey,
    check_binding,
    key_algorithm,
    platform_binding,
    ref_scheme,
    tenant_binding,
)
from certplane.ca.keys.envelope import MasterKey
from certplane.ca.keys.software import SoftwareKeyStore

TENANT_A = tenant_binding("0f3a9c")
TENANT_B = tenant_binding("77e1d2")
StoreFactory = Callable[[], KeyStore]


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _assert_signs(key: SigningKey, public_key: PublicKey) -> None:
    message = b"tbsCertificate"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(
            key.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256())
        )
    else:
        assert isinstance(public_key, rsa.RSAPublicKey)
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_generate_then_load_in_a_fresh_store(
    keystore_factory: StoreFactory, algorithm: KeyAlgorithm
) -> None:
    stored = keystore_factory().generate(algorithm, binding=TENANT_A)
    assert key_algorithm(stored.public_key) is algorithm
    key = keystore_factory().load(stored.ref, binding=TENANT_A)
    assert _spki(key.public_key()) == _spki(stored.public_key)
    _assert_signs(key, stored.public_key)
    with pytest.raises(KeyBindingError):
        keystore_factory().load(stored.ref, binding=TENANT_B)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048])
def test_binding_mismatch_is_refused_when_cached_by_generate(
    keystore_factory: StoreFactory, algorithm: KeyAlgorithm
) -> None:
    store = keystore_factory()
    stored = store.generate(algorithm, binding=TENANT_A)
    with pytest.raises(KeyBindingError, match=TENANT_B):
        store.load(stored.ref, binding=TENANT_B)
    assert _spki(store.load(stored.ref, binding=TENANT_A).public_key()) == _spki(stored.public_key)


def test_binding_mismatch_is_refused_when_cached_by_load(keystore_factory: StoreFactory) -> None:
    stored = keystore_factory().generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    store = keystore_factory()
    store.load(stored.ref, binding=TENANT_A)
    with pytest.raises(KeyBindingError):
        store.load(stored.ref, binding=TENANT_B)
    with pytest.raises(KeyBindingError):
        store.load(stored.ref, binding=platform_binding("root"))


def test_refused_load_does_not_poison_the_cache(keystore_factory: StoreFactory) -> None:
    stored = keystore_factory().generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    store = keystore_factory()
    with pytest.raises(KeyBindingError):
        store.load(stored.ref, binding=TENANT_B)
    store.load(stored.ref, binding=TENANT_A)
    with pytest.raises(KeyBindingError):
        store.load(stored.ref, binding=TENANT_B)


def test_binding_is_an_exact_match(keystore_factory: StoreFactory) -> None:
    stored = keystore_factory().generate(KeyAlgorithm.EC_P256, binding="tenant:abc")
    for near_miss in ("tenant:abcd", "tenant:ab", "tenant:ABC", "platform:abc"):
        with pytest.raises(KeyBindingError):
            keystore_factory().load(stored.ref, binding=near_miss)


@pytest.mark.parametrize("binding", ["", "tenant", "tenant:", ":x", "Tenant:x", "tenant:a b"])
def test_malformed_binding_is_refused(keystore_factory: StoreFactory, binding: str) -> None:
    with pytest.raises(ValueError, match="malformed key binding"):
        keystore_factory().generate(KeyAlgorithm.EC_P256, binding=binding)
    with pytest.raises(ValueError, match="malformed key binding"):
        check_binding(binding)


def test_refs_are_distinct_and_name_their_scheme(keystore_factory: StoreFactory) -> None:
    store = keystore_factory()
    first = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    second = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    assert first.ref != second.ref
    assert ref_scheme(first.ref) in {"soft", "pkcs11"}


# --- SoftwareKeyStore specifics ---


def test_software_ref_format(master: MasterKey) -> None:
    stored = SoftwareKeyStore(master).generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    assert stored.ref.startswith("soft:v1:")
    body = stored.ref.removeprefix("soft:v1:")
    assert "=" not in body and "+" not in body and "/" not in body


def test_software_key_from_another_master_key_is_not_a_binding_error(master: MasterKey) -> None:
    stored = SoftwareKeyStore(master).generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    with pytest.raises(KeystoreError, match="master key") as caught:
        SoftwareKeyStore(MasterKey.generate()).load(stored.ref, binding=TENANT_A)
    assert not isinstance(caught.value, KeyBindingError)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("pkcs11:token=ca;object=int", "not a software key ref"),
        ("soft:v2:AAAA", "not a software key ref"),
        ("soft:v1:", "malformed software key ref"),
        ("soft:v1:not*base64", "malformed software key ref"),
        ("soft:v1:A", "malformed software key ref"),
        ("soft:v1:AAAAAAAA", "not a certplane sealed blob"),
        ("soft:v1:Q1BFAQAA", "truncated"),
    ],
)
def test_software_store_refuses_bad_refs(master: MasterKey, ref: str, message: str) -> None:
    with pytest.raises(KeystoreError, match=message):
        SoftwareKeyStore(master).load(ref, binding=TENANT_A)


def test_software_store_detects_a_corrupted_ref(master: MasterKey) -> None:
    ref = SoftwareKeyStore(master).generate(KeyAlgorithm.EC_P256, binding=TENANT_A).ref
    index = len(ref) - 10
    corrupted = ref[:index] + ("A" if ref[index] != "A" else "B") + ref[index + 1 :]
    with pytest.raises(KeystoreError, match="failed authentication"):
        SoftwareKeyStore(master).load(corrupted, binding=TENANT_A)


def test_software_cache_evicts_and_reloads(master: MasterKey) -> None:
    store = SoftwareKeyStore(master, cache_size=1)
    first = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    second = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_B)
    assert _spki(store.load(first.ref, binding=TENANT_A).public_key()) == _spki(first.public_key)
    with pytest.raises(KeyBindingError):
        store.load(second.ref, binding=TENANT_A)
    assert _spki(store.load(second.ref, binding=TENANT_B).public_key()) == _spki(second.public_key)


def test_reprs_show_no_key_material(master: MasterKey) -> None:
    store = SoftwareKeyStore(master)
    stored = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    body = stored.ref.removeprefix("soft:v1:")
    assert body[:16] not in repr(stored)
    assert master.material.hex() not in repr(store)


def test_router_dispatches_by_scheme(master: MasterKey) -> None:
    software = SoftwareKeyStore(master)
    router = KeyStoreRouter({"soft": software}, generate_in="soft")
    stored = router.generate(KeyAlgorithm.EC_P384, binding=TENANT_A)
    assert _spki(router.load(stored.ref, binding=TENANT_A).public_key()) == _spki(stored.public_key)
    with pytest.raises(KeyBindingError):
        router.load(stored.ref, binding=TENANT_B)
    with pytest.raises(KeystoreError, match="no keystore registered"):
        router.load("pkcs11:token=ca;object=key", binding=TENANT_A)
    with pytest.raises(KeystoreError, match="no scheme"):
        router.load("garbage", binding=TENANT_A)
    with pytest.raises(ValueError, match="no keystore registered"):
        KeyStoreRouter({"soft": software}, generate_in="pkcs11")
