"""Shared fixtures for certplane.ca: master keys, keystores, CA hierarchies, `openssl verify`."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cptest.softhsm import session_softhsm
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.ca.api import IssuanceRequest, new_serial
from certplane.ca.hierarchy import create_intermediate, create_root
from certplane.ca.keys.api import KeyAlgorithm, KeyStore, SigningKey
from certplane.ca.keys.envelope import MasterKey
from certplane.ca.keys.pkcs11 import Pkcs11KeyStore, Pkcs11Settings
from certplane.ca.keys.software import SoftwareKeyStore, generate_private_key
from certplane.ca.local import LocalIssuer
from certplane.ca.profiles import DEFAULT_PROFILES

CRL_URL = "http://crl.certplane.test/int.crl"
CA_ISSUERS_URL = "http://certs.certplane.test/int.der"

# Every keystore backend runs the same suite: software keys, and keys in a SoftHSM2 token.
KEYSTORE_BACKENDS = ["software", "pkcs11"]


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture(params=KEYSTORE_BACKENDS)
def keystore_factory(request: pytest.FixtureRequest, master: MasterKey) -> Callable[[], KeyStore]:
    """Makes fresh store instances over the same backing keys (fresh = empty in-process cache)."""
    if request.param == "software":
        return lambda: SoftwareKeyStore(master)
    if request.param == "pkcs11":
        token = request.getfixturevalue("shared_token")
        return lambda: pkcs11_store(token)
    raise AssertionError(f"no factory for keystore backend {request.param}")


def pkcs11_store(*tokens: str, **settings: Any) -> Pkcs11KeyStore:
    hsm = session_softhsm()
    return Pkcs11KeyStore(Pkcs11Settings(hsm.module, tokens, hsm.pin_source, **settings))


@pytest.fixture(scope="session")
def shared_token() -> str:
    """One SoftHSM2 token shared by the session's keystore tests (keys of many bindings)."""
    return session_softhsm().new_token("shared")


@dataclass(frozen=True)
class Hierarchy:
    root: x509.Certificate
    root_key: SigningKey
    intermediate: x509.Certificate
    intermediate_key: SigningKey


def build_hierarchy(algorithm: KeyAlgorithm) -> Hierarchy:
    root_key = generate_private_key(KeyAlgorithm.EC_P384)
    root = create_root(root_key, "certplane Test Root", "certplane", timedelta(days=3650))
    key = generate_private_key(algorithm)
    intermediate = create_intermediate(
        root,
        root_key,
        key.public_key(),
        f"Test Intermediate {algorithm}",
        "certplane",
        timedelta(days=365),
        crl_url="http://crl.certplane.test/root.crl",
    )
    return Hierarchy(root, root_key, intermediate, key)


def keystore_intermediate(
    store: KeyStore, base: Hierarchy, binding: str, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
) -> Hierarchy:
    """An intermediate under ``base``'s root whose key lives in ``store``."""
    stored = store.generate(algorithm, binding=binding)
    intermediate = create_intermediate(
        base.root, base.root_key, stored.public_key, f"{binding} CA", "certplane",
        timedelta(days=365),
    )  # fmt: skip
    return Hierarchy(
        base.root, base.root_key, intermediate, store.load(stored.ref, binding=binding)
    )


def sibling_intermediate(h: Hierarchy, name: str = "Sibling") -> x509.Certificate:
    """Another intermediate under the same root (with a key nobody keeps)."""
    return create_intermediate(
        h.root,
        h.root_key,
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        name,
        "certplane",
        timedelta(days=30),
    )


@pytest.fixture(
    scope="session", params=[KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048]
)
def hierarchy(request: pytest.FixtureRequest) -> Hierarchy:
    """Root (P-384) and one intermediate per issuer algorithm, built once per session."""
    return build_hierarchy(request.param)


@pytest.fixture(scope="session")
def ec_hierarchy() -> Hierarchy:
    return build_hierarchy(KeyAlgorithm.EC_P256)


def make_issuer(h: Hierarchy, **kwargs: object) -> LocalIssuer:
    options: dict[str, object] = {"crl_url": CRL_URL, "ca_issuers_url": CA_ISSUERS_URL}
    options.update(kwargs)
    return LocalIssuer(
        h.intermediate, [h.intermediate], h.intermediate_key, DEFAULT_PROFILES, **options
    )


@pytest.fixture
def issuer_for() -> Callable[..., LocalIssuer]:
    return make_issuer


@pytest.fixture
def make_request() -> Callable[..., IssuanceRequest]:
    """An IssuanceRequest for a fresh P-256 key; keyword arguments override fields."""

    def _make(**overrides: object) -> IssuanceRequest:
        not_before, not_after = DEFAULT_PROFILES["default"].validity_window(datetime.now(UTC))
        fields: dict[str, object] = {
            "tenant_id": "tenant-a",
            "serial": new_serial(),
            "public_key": ec.generate_private_key(ec.SECP256R1()).public_key(),
            "dns_names": ("www.example.com", "example.com"),
            "ip_addresses": (
                ipaddress.ip_address("192.0.2.7"),
                ipaddress.ip_address("2001:db8::7"),
            ),
            "not_before": not_before,
            "not_after": not_after,
        }
        fields.update(overrides)
        return IssuanceRequest(**fields)

    return _make


def _pem_file(path: Path, certs: Sequence[x509.Certificate]) -> str:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return str(path)


@pytest.fixture
def openssl_verify(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `openssl verify -CAfile root -untrusted intermediates leaf` and return the result."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl CLI is missing: apt-get install openssl"

    def _verify(
        root: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        leaf: x509.Certificate | str,
        *extra: str,
    ) -> subprocess.CompletedProcess[str]:
        leaf_path = tmp_path / "leaf.pem"
        if isinstance(leaf, str):
            leaf_path.write_text(leaf)
        else:
            _pem_file(leaf_path, [leaf])
        command = [
            openssl,
            "verify",
            *extra,
            "-CAfile",
            _pem_file(tmp_path / "root.pem", [root]),
            "-untrusted",
            _pem_file(tmp_path / "intermediates.pem", intermediates),
            str(leaf_path),
        ]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    return _verify
