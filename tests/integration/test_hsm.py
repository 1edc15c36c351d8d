"""Issuance with CA keys in a PKCS#11 token (SoftHSM2), end to end through the ACME server.

Shared root, tenant intermediates: the platform root and each tenant's intermediate are
generated in the token ("shared" holds per-tenant key objects; "dedicated" is one tenant's
own token). Faults: the token disappears between two issuances, every session dies just
before one, the database is edited to point a tenant at another's key, and a wrong PIN.
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pkcs11
import pytest
from cptest.csr import csr_der
from cptest.flows import answered_order
from cptest.jwsclient import RawClient, b64
from cptest.server import Platform, ServerThread, make_config, provision
from cptest.softhsm import session_softhsm
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certplane.ca.keys.api import KeyAlgorithm
from certplane.ca.keys.errors import KeyBindingError, KeystoreError
from certplane.server.app import SERVICES
from certplane.server.clock import FakeClock
from certplane.server.config import CaConfig, KeystoreConfig, Pkcs11Config
from certplane.server.keystores import build_keystore
from certplane.server.model import (
    Certificate,
    CertificateStatus,
    HierarchyPattern,
    IssuerStatus,
)
from certplane.server.ra.provisioning import IssuerSpec
from certplane.server.storage.scope import TenantScope

SHARED, DEDICATED = "shared-tenant", "dedicated-tenant"


def hsm_keystore(*tokens: str, pin_source: str | None = None) -> KeystoreConfig:
    hsm = session_softhsm()
    return KeystoreConfig(
        backend="pkcs11",
        pkcs11=Pkcs11Config(
            module=hsm.module,
            tokens=tokens,
            pin_source=pin_source or hsm.pin_source,
            reconnect_first_seconds=0.0,
            reconnect_max_seconds=0.0,
        ),
    )


@pytest.fixture(scope="module")
def tokens() -> tuple[str, str, str]:
    hsm = session_softhsm()
    return hsm.new_token("shared"), hsm.new_token("dedicated"), hsm.new_token("enterprise")


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, http01_port, tokens) -> Platform:
    directory = tmp_path_factory.mktemp("certplane-hsm")
    config = make_config(
        directory,
        f"sqlite+aiosqlite:///{directory}/certplane.db",
        http01_port=http01_port,
        keystore=hsm_keystore(*tokens),
        ca=CaConfig(issuance_retry_first_seconds=1, issuance_retry_max_seconds=1),
    )
    return provision(config, {SHARED: False})


@pytest.fixture(scope="module")
def server(platform, clock, tokens) -> Iterator[ServerThread]:
    thread = ServerThread(platform.config, clock=clock).start()
    thread.call(
        lambda: thread.provisioner().create_tenant(
            DEDICATED, "Dedicated", eab_required=False, key_token=tokens[1]
        )
    )
    try:
        yield thread
    finally:
        thread.stop()


def ready(server, platform, http01, slug: str = SHARED) -> tuple[RawClient, dict]:
    client = RawClient(platform.directory(slug))
    assert client.new_account().status_code == 201
    order = answered_order(client, http01, f"hsm-{secrets.token_hex(4)}.{slug}.localhost")
    server.drain()
    return client, order


def finalize(server, client: RawClient, order: dict) -> dict:
    names = [i["value"] for i in order["identifiers"]]
    response = client.post(order["finalize"], {"csr": b64(csr_der(names))})
    assert response.status_code == 200, response.text
    server.drain()
    return client.post(order["url"]).json()


def certificates(server, slug: str, order_id: str) -> list[Certificate]:
    services = server.app[SERVICES]

    async def load() -> list[Certificate]:
        async with services.uow.platform(write=False) as p:
            row = await p.tenant_by_slug(slug)
        async with services.uow.begin(TenantScope(row.id, row.slug), write=False) as tx:
            return await tx.certificates.for_order(order_id)

    return server.call(load)


def openssl_verify(tmp_path: Path, root_pem: bytes, chain_pem: str, at: FakeClock) -> None:
    """`openssl verify` at the server's (fake) time: earlier tests moved its clock on."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    pem = [c.public_bytes(Encoding.PEM) for c in certs]
    (tmp_path / "root.pem").write_bytes(root_pem)
    (tmp_path / "leaf.pem").write_bytes(pem[0])
    (tmp_path / "chain.pem").write_bytes(b"".join(pem[1:]))
    result = subprocess.run(
        ["openssl", "verify", "-attime", str(int(at.now().timestamp())),
         "-CAfile", str(tmp_path / "root.pem"),
         "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def issuer_key_ref(platform: Platform, slug: str) -> str:
    with sqlite3.connect(platform.config.database.url.split("///", 1)[1]) as db:
        (ref,) = db.execute(
            "SELECT i.key_ref FROM issuers i JOIN tenants t ON t.id = i.tenant_id"
            " WHERE t.slug = ? AND i.tenant_id = t.id",
            (slug,),
        ).fetchone()
    return str(ref)


@pytest.mark.parametrize("slug", [SHARED, DEDICATED])
def test_issuance_with_token_held_keys(server, platform, http01, tmp_path, tokens, slug, clock):
    """The tenant's intermediate key and the platform root are in the token; the chain the
    ACME client downloads passes `openssl verify` against the platform root."""
    ref = issuer_key_ref(platform, slug)
    assert ref.startswith("pkcs11:")
    assert f"token={tokens[1] if slug == DEDICATED else tokens[0]}" in ref
    client, order = ready(server, platform, http01, slug)
    done = finalize(server, client, order)
    assert done["status"] == "valid", done
    chain = client.post(done["certificate"]).text
    openssl_verify(tmp_path, platform.root_pem, chain, clock)


def test_token_gone_between_two_issuances_then_back(server, platform, http01, clock):
    """While the token is away the order stays processing and the job is retried; when the
    token is back the order becomes valid with exactly one certificate (no duplicates)."""
    client, first = ready(server, platform, http01)
    assert finalize(server, client, first)["status"] == "valid"
    client, order = ready(server, platform, http01)
    with session_softhsm().tokens_away():
        assert finalize(server, client, order)["status"] == "processing"
        clock.advance(timedelta(seconds=2))
        server.run_worker_once()
        assert client.post(order["url"]).json()["status"] == "processing"
    clock.advance(timedelta(seconds=2))
    server.run_worker_once()
    body = client.post(order["url"]).json()
    assert body["status"] == "valid", body
    certs = certificates(server, SHARED, order["url"].rsplit("/", 1)[1])
    issued = [c for c in certs if c.status is CertificateStatus.ISSUED]
    assert len(issued) == 1
    assert all(c.status is CertificateStatus.ABANDONED for c in certs if c not in issued)


def test_token_gone_past_the_deadline_fails_the_order_clearly(server, platform, http01, clock):
    client, order = ready(server, platform, http01)
    with session_softhsm().tokens_away():
        assert finalize(server, client, order)["status"] == "processing"
        clock.advance(timedelta(seconds=601))
        server.run_worker_once()
    body = client.post(order["url"]).json()
    assert body["status"] == "invalid", body
    assert "key store unavailable" in body["error"]["detail"]
    certs = certificates(server, SHARED, order["url"].rsplit("/", 1)[1])
    assert all(c.status is CertificateStatus.ABANDONED for c in certs)


def test_sessions_invalidated_just_before_signing(server, platform, http01):
    """Every session handle dies (as after a network HSM failover) between loading the key
    and signing; the issuance reconnects and completes inline."""
    from certplane.ca.keys.pkcs11 import _Module

    warm_client, warm = ready(server, platform, http01)
    assert finalize(server, warm_client, warm)["status"] == "valid"  # the pool is logged in
    client, order = ready(server, platform, http01)
    generation = _Module.load(session_softhsm().module).generation
    pkcs11.lib(session_softhsm().module).reinitialize()
    assert finalize(server, client, order)["status"] == "valid"
    assert _Module.load(session_softhsm().module).generation > generation  # it did reconnect


def test_wrong_pin_stops_the_start(tmp_path):
    """A process starting with a wrong PIN stops with an error naming the token, not the PIN
    (a token no one in this process has logged in to yet, as at a real start)."""
    token = session_softhsm().new_token("pin")
    (tmp_path / "bad.pin").write_text("wrong-pin\n")
    config = make_config(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/x.db",
        keystore=hsm_keystore(token, pin_source=f"file:{tmp_path}/bad.pin"),
    )
    from certplane.ca.keys.envelope import MasterKey

    with pytest.raises(KeystoreError, match="PIN rejected") as refused:
        build_keystore(config, MasterKey.generate())
    assert "wrong-pin" not in str(refused.value)


@pytest.mark.parametrize("tamper", ["verbatim", "relabelled"])
def test_tampered_key_ref_is_refused_at_signing_time(server, platform, http01, tamper):
    """Someone with database access points the dedicated tenant's issuer at the shared
    tenant's key, either copying the ref or also rewriting its object label to the dedicated
    tenant's (so only the token's own, immutable label tells): refused when signing; the order
    fails, nothing is signed."""
    original = issuer_key_ref(platform, DEDICATED)
    foreign = issuer_key_ref(platform, SHARED)
    if tamper == "relabelled":
        foreign = _relabelled(foreign, tenant_id(platform, DEDICATED))
    path = platform.config.database.url.split("///", 1)[1]
    client, order = ready(server, platform, http01, DEDICATED)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE issuers SET key_ref = ? WHERE tenant_id ="
            " (SELECT id FROM tenants WHERE slug = ?)",
            (foreign, DEDICATED),
        )
    try:
        body = finalize(server, client, order)
    finally:
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE issuers SET key_ref = ? WHERE tenant_id ="
                " (SELECT id FROM tenants WHERE slug = ?)",
                (original, DEDICATED),
            )
    assert body["status"] == "invalid", body
    assert "not bound to this tenant" in body["error"]["detail"]
    certs = certificates(server, DEDICATED, order["url"].rsplit("/", 1)[1])
    assert all(c.status is CertificateStatus.ABANDONED for c in certs)


def test_dedicated_hierarchy_lives_in_its_own_token(
    server, platform, http01, tokens, tmp_path, clock
):
    """Enterprise tier: a tenant root and intermediate of its own, both generated in a token
    dedicated to the tenant; the chain verifies to that root, not to the platform's."""
    enterprise_token = tokens[2]
    unlisted = session_softhsm().new_token("unlisted")
    spec = IssuerSpec(KeyAlgorithm.EC_P384, HierarchyPattern.DEDICATED_ROOT, key_token=unlisted)
    with pytest.raises(KeystoreError, match="not in keystore"):
        create_tenant(server, "unlisted", spec)
    spec = IssuerSpec(
        KeyAlgorithm.EC_P384, HierarchyPattern.DEDICATED_ROOT, key_token=enterprise_token
    )
    create_tenant(server, "enterprise", spec)
    issuers = server.call(lambda: server.provisioner().issuers("enterprise"))
    (root,) = [i for i in issuers if i.status == IssuerStatus.ROOT.value]
    (active,) = [i for i in issuers if i.status == IssuerStatus.ACTIVE.value]
    assert f"token={enterprise_token};" in root.key_ref
    assert f"token={enterprise_token};" in active.key_ref
    client, order = ready(server, platform, http01, "enterprise")
    done = finalize(server, client, order)
    assert done["status"] == "valid", done
    chain = client.post(done["certificate"]).text
    openssl_verify(tmp_path, root.certificate_pem.encode(), chain, clock)
    with pytest.raises(KeyBindingError, match="dedicated to another owner"):
        create_tenant(server, "intruder", spec)


def test_customer_owned_ca_with_a_token_key(server, platform, http01, tmp_path, clock):
    """The intermediate key is generated in the HSM; only its CSR leaves; the imported
    certificate activates it and issuance chains to the customer's root."""
    from datetime import timedelta

    from cryptography.hazmat.primitives.asymmetric import ec

    from certplane.ca.hierarchy import create_intermediate, create_root

    create_tenant(server, "customer-hsm", IssuerSpec(KeyAlgorithm.EC_P256))
    (previous,) = server.call(lambda: server.provisioner().issuers("customer-hsm"))
    pending = server.call(
        lambda: server.provisioner().export_issuer_csr(
            "customer-hsm", IssuerSpec(KeyAlgorithm.EC_P256)
        )
    )
    assert pending.key_ref.startswith("pkcs11:")
    csr = x509.load_pem_x509_csr(pending.csr_pem.encode())
    assert csr.is_signature_valid  # signed inside the token
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = create_root(root_key, "Customer Root", "Customer", timedelta(days=3650))
    signed = create_intermediate(root, root_key, csr.public_key(), "Customer CA", "Customer",
                                 timedelta(days=365))  # fmt: skip
    pem = lambda c: c.public_bytes(Encoding.PEM).decode()  # noqa: E731
    server.call(
        lambda: server.provisioner().import_issuer_certificate(
            "customer-hsm",
            pending.id,
            certificate_pem=pem(signed),
            root_pem=pem(root),
            replaces=previous.id,
        )
    )
    client, order = ready(server, platform, http01, "customer-hsm")
    done = finalize(server, client, order)
    assert done["status"] == "valid", done
    openssl_verify(tmp_path, pem(root).encode(), client.post(done["certificate"]).text, clock)


def create_tenant(server, slug: str, spec: IssuerSpec) -> None:
    server.call(
        lambda: server.provisioner().create_tenant(slug, slug, eab_required=False, spec=spec)
    )


def test_rotating_a_shared_token_key_leaves_the_token_shared(server, platform, http01, clock):
    """A rotation places the new key where the old one was, the shared token: other tenants
    and the platform root keep working there."""
    issuers = server.call(lambda: server.provisioner().issuers(SHARED))
    (active,) = [i for i in issuers if i.status == IssuerStatus.ACTIVE.value]
    server.call(lambda: server.provisioner().rotate_issuer(SHARED, active.id))
    create_tenant(server, "after-rotation", IssuerSpec(KeyAlgorithm.EC_P256))
    for slug in (SHARED, "after-rotation"):
        client, order = ready(server, platform, http01, slug)
        assert finalize(server, client, order)["status"] == "valid"


def tenant_id(platform: Platform, slug: str) -> str:
    with sqlite3.connect(platform.config.database.url.split("///", 1)[1]) as db:
        (found,) = db.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()
    return str(found)


def _relabelled(ref: str, tenant: str) -> str:
    from certplane.ca.keys.api import tenant_binding
    from certplane.ca.keys.pkcs11 import key_label
    from certplane.ca.keys.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

    uri = parse_pkcs11_uri(ref)
    assert uri.key_id is not None
    label = key_label(tenant_binding(tenant), uri.key_id)
    return str(Pkcs11Uri(path={**uri.path, "object": label.encode()}))
