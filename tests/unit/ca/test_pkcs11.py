"""The PKCS#11 keystore against a real SoftHSM2 token: what only an HSM-backed store has.

(The KeyStore contract itself runs for every backend in test_keystore.py.)
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cptest.softhsm import session_softhsm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from certplane.ca.api import IssuanceRequest
from certplane.ca.hierarchy import create_intermediate, create_root
from certplane.ca.keys.api import KeyAlgorithm, tenant_binding
from certplane.ca.keys.errors import KeyBindingError, KeystoreError, KeystoreUnavailable
from certplane.ca.keys.pkcs11 import (
    Backoff,
    Pin,
    Pkcs11EcKey,
    Pkcs11KeyStore,
    Pkcs11Settings,
    key_label,
    read_pin,
)
from certplane.ca.keys.pkcs11_uri import parse_pkcs11_uri
from certplane.ca.local import LocalIssuer
from certplane.ca.profiles import DEFAULT_PROFILES

from .conftest import pkcs11_store

TENANT_A = tenant_binding("a" * 32)
TENANT_B = tenant_binding("b" * 32)
NO_BACKOFF = Backoff(first_seconds=0.0, max_seconds=0.0)


def _raw_session(label: str) -> pkcs11.Session:
    """A session of our own on the token, as an attacker with the PIN would have."""
    hsm = session_softhsm()
    lib = pkcs11.lib(hsm.module)
    token = lib.get_token(token_label=label)
    pin = read_pin(hsm.pin_source, label).reveal()
    try:
        return token.open(user_pin=pin, rw=True)
    except p11.UserAlreadyLoggedIn:
        return token.open(rw=True)


def _key_id(ref: str) -> bytes:
    key_id = parse_pkcs11_uri(ref).key_id
    assert key_id is not None
    return key_id


# --- keys are generated inside and never leave ---------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_keys_are_generated_sensitive_and_never_extractable(
    shared_token: str, algorithm: KeyAlgorithm
) -> None:
    stored = pkcs11_store(shared_token).generate(algorithm, binding=TENANT_A)
    session = _raw_session(shared_token)
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=_key_id(stored.ref))
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.LOCAL] is True  # generated in the token, not imported
    assert key[Attribute.LABEL] == key_label(TENANT_A, _key_id(stored.ref))


def test_private_key_cannot_be_exported(shared_token: str) -> None:
    """Reading the private value, unlocking it, or wrapping it out are all refused by the token."""
    ec_ref = pkcs11_store(shared_token).generate(KeyAlgorithm.EC_P256, binding=TENANT_A).ref
    rsa_ref = pkcs11_store(shared_token).generate(KeyAlgorithm.RSA_2048, binding=TENANT_A).ref
    session = _raw_session(shared_token)
    ec_key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=_key_id(ec_ref))
    rsa_key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=_key_id(rsa_ref))
    with pytest.raises(p11.AttributeSensitive):
        ec_key[Attribute.VALUE]
    with pytest.raises(p11.AttributeSensitive):
        rsa_key[Attribute.PRIVATE_EXPONENT]
    with pytest.raises(p11.PKCS11Error):  # CKR_ATTRIBUTE_READ_ONLY or CKR_ACTION_PROHIBITED
        ec_key[Attribute.EXTRACTABLE] = True
    wrapping = session.generate_key(KeyType.AES, 256, store=False)
    with pytest.raises(p11.KeyUnextractable):
        wrapping.wrap_key(ec_key)
    loaded = pkcs11_store(shared_token).load(ec_ref, binding=TENANT_A)
    with pytest.raises(KeystoreError):
        loaded.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(KeystoreError):
        loaded.private_numbers()


def test_label_recording_the_owner_cannot_be_changed(shared_token: str) -> None:
    stored = pkcs11_store(shared_token).generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    session = _raw_session(shared_token)
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=_key_id(stored.ref))
    with pytest.raises(p11.PKCS11Error):  # CKR_ATTRIBUTE_READ_ONLY or CKR_ACTION_PROHIBITED
        key[Attribute.LABEL] = key_label(TENANT_B, _key_id(stored.ref))


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signatures_verify_with_the_public_key(shared_token: str, algorithm: KeyAlgorithm) -> None:
    stored = pkcs11_store(shared_token).generate(algorithm, binding=TENANT_A)
    key = pkcs11_store(shared_token).load(stored.ref, binding=TENANT_A)
    data = b"to be signed"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if algorithm is KeyAlgorithm.EC_P384 else hashes.SHA256()
        signature = key.sign(data, ec.ECDSA(digest))
        assert isinstance(stored.public_key, ec.EllipticCurvePublicKey)
        stored.public_key.verify(signature, data, ec.ECDSA(digest))
    else:
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        assert isinstance(stored.public_key, rsa.RSAPublicKey)
        stored.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_a_signature_that_does_not_verify_is_never_released(shared_token: str) -> None:
    """The store verifies what the token returns: a key object whose public half is not the
    token key's (as with a token returning garbage) signs nothing."""
    store = pkcs11_store(shared_token)
    stored = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    real = store.load(stored.ref, binding=TENANT_A)
    assert isinstance(real, Pkcs11EcKey)
    mismatched = Pkcs11EcKey(
        real._pool,
        _key_id(stored.ref),
        key_label(TENANT_A, _key_id(stored.ref)),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with pytest.raises(KeystoreError, match="does not verify"):
        mismatched.sign(b"data", ec.ECDSA(hashes.SHA256()))


def test_unsupported_signature_schemes_are_refused(shared_token: str) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm

    store = pkcs11_store(shared_token)
    rsa_key = store.load(
        store.generate(KeyAlgorithm.RSA_2048, binding=TENANT_A).ref, binding=TENANT_A
    )
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    with pytest.raises(UnsupportedAlgorithm):
        rsa_key.sign(b"data", pss, hashes.SHA256())


async def test_hierarchy_signed_in_the_token_passes_openssl_verify(
    shared_token: str,
    openssl_verify: Callable[..., subprocess.CompletedProcess[str]],
    make_request: Callable[..., IssuanceRequest],
) -> None:
    """cryptography's builders sign through token keys: root (P-384), intermediate (RSA),
    and a leaf issued by `LocalIssuer` with the token-held intermediate key."""
    store = pkcs11_store(shared_token)
    root_key = store.load(
        store.generate(KeyAlgorithm.EC_P384, binding=TENANT_A).ref, binding=TENANT_A
    )
    root = create_root(root_key, "HSM Test Root", "certplane", timedelta(days=3650))
    inter_stored = store.generate(KeyAlgorithm.RSA_2048, binding=TENANT_A)
    intermediate = create_intermediate(
        root,
        root_key,
        inter_stored.public_key,
        "HSM Test Issuing CA",
        "certplane",
        timedelta(days=365),
    )
    inter_key = store.load(inter_stored.ref, binding=TENANT_A)
    issuer = LocalIssuer(intermediate, [intermediate], inter_key, DEFAULT_PROFILES)
    issued = await issuer.issue(make_request())
    result = openssl_verify(root, [intermediate], issued.certificate_pem)
    assert result.returncode == 0, result.stdout + result.stderr


def test_concurrent_signing_from_many_threads(shared_token: str) -> None:
    """Eight threads sign at once through a pool of two sessions; every signature verifies."""
    store = pkcs11_store(shared_token, sessions=2)
    stored = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    key = store.load(stored.ref, binding=TENANT_A)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for n in range(40):
                data = f"{index}-{n}".encode()
                key.public_key().verify(
                    key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256())
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- isolation --------------------------------------------------------------------------------


def test_tampered_ref_naming_another_owner_is_refused_by_the_token(shared_token: str) -> None:
    """A ref edited to claim tenant A's key for tenant B (object label rewritten to B's) is
    refused: the token's own label, which cannot change, still names A."""
    stored = pkcs11_store(shared_token).generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    uri = parse_pkcs11_uri(stored.ref)
    key_id = _key_id(stored.ref)
    tampered = str(type(uri)(path={**uri.path, "object": key_label(TENANT_B, key_id).encode()}))
    with pytest.raises(KeyBindingError):
        pkcs11_store(shared_token).load(tampered, binding=TENANT_B)
    with pytest.raises(KeyBindingError):
        pkcs11_store(shared_token).load(stored.ref, binding=TENANT_B)


def test_dedicated_token_belongs_to_its_first_owner() -> None:
    hsm = session_softhsm()
    dedicated = hsm.new_token("dedicated")
    shared = hsm.new_token("shared")
    store = pkcs11_store(shared, dedicated)
    stored = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A, placement=dedicated)
    assert parse_pkcs11_uri(stored.ref).token == dedicated
    second = store.generate(KeyAlgorithm.EC_P384, binding=TENANT_A, placement=dedicated)
    assert store.load(second.ref, binding=TENANT_A).public_key() == second.public_key
    with pytest.raises(KeyBindingError, match="dedicated to another owner"):
        store.generate(KeyAlgorithm.EC_P256, binding=TENANT_B, placement=dedicated)
    with pytest.raises(KeyBindingError):
        store.load(stored.ref, binding=TENANT_B)


def test_shared_keys_cannot_go_into_a_claimed_token() -> None:
    hsm = session_softhsm()
    dedicated = hsm.new_token("dedicated")
    owner_store = pkcs11_store(hsm.new_token("shared"), dedicated)
    owner_store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A, placement=dedicated)
    # Another deployment lists the claimed token as its shared token: B's keys are refused.
    with pytest.raises(KeyBindingError):
        pkcs11_store(dedicated).generate(KeyAlgorithm.EC_P256, binding=TENANT_B)


def test_unknown_token_in_a_ref_is_refused(shared_token: str) -> None:
    stored = pkcs11_store(shared_token).generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    other = session_softhsm().new_token("other")
    with pytest.raises(KeystoreError, match=r"not in keystore\.pkcs11\.tokens"):
        pkcs11_store(other).load(stored.ref, binding=TENANT_A)


@pytest.mark.parametrize(
    "ref",
    [
        "pkcs11:token=x;type=private",
        "pkcs11:token=x;id=%01",
        "pkcs11:id=%01;type=private",
        "pkcs11:token=x;id=%01;type=private?pin-value=1234",
        "pkcs11:token=x;token=y;id=%01;type=private",
        "soft:v1:abc",
    ],
)
def test_malformed_refs_are_refused(shared_token: str, ref: str) -> None:
    with pytest.raises(KeystoreError):
        pkcs11_store(shared_token).load(ref, binding=TENANT_A)


# --- PINs and start-up checks -------------------------------------------------------------


def _store(tokens: tuple[str, ...], pin_source: str, **extra: Any) -> Pkcs11KeyStore:
    environ = extra.pop("environ", None)
    settings = Pkcs11Settings(session_softhsm().module, tokens, pin_source, **extra)
    return Pkcs11KeyStore(settings, environ=environ)


def test_wrong_pin_is_an_error_at_start(tmp_path: Path) -> None:
    label = session_softhsm().new_token("wrongpin")
    (tmp_path / f"{label}.pin").write_text("not-the-pin\n")
    store = _store((label,), f"file:{tmp_path}/{{token}}.pin")
    with pytest.raises(KeystoreError, match="PIN rejected") as refused:
        store.check()
    assert "not-the-pin" not in str(refused.value)


def test_missing_token_is_an_error_at_start() -> None:
    store = _store(
        ("never-created",), "env:CP_TEST_PIN", backoff=NO_BACKOFF, environ={"CP_TEST_PIN": "1"}
    )
    with pytest.raises(KeystoreUnavailable, match="never-created"):
        store.check()


def test_pin_sources(tmp_path: Path) -> None:
    (tmp_path / "tok.pin").write_text("secret-pin\n")
    assert read_pin(f"file:{tmp_path}/{{token}}.pin", "tok").reveal() == "secret-pin"
    assert read_pin("env:P_{token}", "x", {"P_x": "from-env"}).reveal() == "from-env"
    assert "secret" not in repr(Pin("secret-pin")) and "secret" not in str(Pin("secret-pin"))
    for source, message in [
        ("literal:1234", "expected 'file:/path' or 'env:NAME'"),
        ("env:MISSING_PIN", "empty"),
        (f"file:{tmp_path}/none.pin", "No such file"),
    ]:
        with pytest.raises(KeystoreError, match=message):
            read_pin(source, "tok", {})


# --- faults: lost sessions, a token that goes away ------------------------------------------


def test_invalidated_sessions_are_replaced_transparently(shared_token: str) -> None:
    """Every session handle dies (C_Finalize/C_Initialize behind the store's back, as after a
    network HSM failover); the next signature logs in again and succeeds."""
    store = pkcs11_store(shared_token)
    key = store.load(store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A).ref, binding=TENANT_A)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    key.sign(b"before", ec.ECDSA(hashes.SHA256()))
    pkcs11.lib(session_softhsm().module).reinitialize()
    signature = key.sign(b"after", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(signature, b"after", ec.ECDSA(hashes.SHA256()))


def test_token_that_disappears_and_returns(shared_token: str) -> None:
    """While the token is gone signing fails fast with KeystoreUnavailable (retryable);
    once it is back, the same key object signs again."""
    hsm = session_softhsm()
    store = pkcs11_store(shared_token, backoff=NO_BACKOFF)
    key = store.load(store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A).ref, binding=TENANT_A)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with hsm.tokens_away():
        with pytest.raises(KeystoreUnavailable):
            key.sign(b"while away", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(KeystoreUnavailable):
            key.sign(b"still away", ec.ECDSA(hashes.SHA256()))
    signature = key.sign(b"back", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(signature, b"back", ec.ECDSA(hashes.SHA256()))


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(first_seconds=0.5, max_seconds=4.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_the_shared_token_is_never_claimed_by_one_owner() -> None:
    """Placing a key "in" the shared token (as a rotation of a shared-token key does) keeps it
    shared: other owners still generate and load there."""
    shared = session_softhsm().new_token("shared")
    store = pkcs11_store(shared)
    a = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A, placement=shared)
    b = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_B)
    assert store.load(b.ref, binding=TENANT_B).public_key() == b.public_key
    assert store.load(a.ref, binding=TENANT_A).public_key() == a.public_key


def test_a_deleted_key_is_a_permanent_error_not_an_outage(shared_token: str) -> None:
    store = pkcs11_store(shared_token, backoff=NO_BACKOFF)
    stored = store.generate(KeyAlgorithm.EC_P256, binding=TENANT_A)
    key = store.load(stored.ref, binding=TENANT_A)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    session = _raw_session(shared_token)
    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        session.get_key(object_class=object_class, id=_key_id(stored.ref)).destroy()
    with pytest.raises(KeystoreError) as refused:
        key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    assert not isinstance(refused.value, KeystoreUnavailable)
    assert "no such key" in str(refused.value)


def test_a_rejected_pin_is_never_tried_again(tmp_path: Path) -> None:
    label = session_softhsm().new_token("pinonce")
    (tmp_path / f"{label}.pin").write_text("wrong-again\n")
    store = _store((label,), f"file:{tmp_path}/{{token}}.pin")
    with pytest.raises(KeystoreError, match="PIN rejected"):
        store.check()
    with pytest.raises(KeystoreError, match="PIN rejected earlier"):
        store.check()
