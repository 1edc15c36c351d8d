"""ACME Renewal Information (RFC 9773) on SQLite and PostgreSQL: the directory's renewalInfo,
the suggested window of a certificate (the tenant policy's fractions of its lifetime, moved into
the past by a revocation or an issuer rotation), and newOrder's ``replaces`` with
``alreadyReplaced`` — including two concurrent replacement orders, of which exactly one wins."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cptest.apiclient import ApiClient
from cptest.databases import database_url
from cptest.jwsclient import ERR, JOSE, RawClient, b64, problem
from cptest.server import Platform, make_config, provision
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certplane.policy.document import Policy
from certplane.server.app import SERVICES
from certplane.server.config import AcmeConfig
from certplane.server.model import Certificate, IssuerRecord, IssuerStatus
from certplane.server.ra.ari import cert_id_of
from certplane.server.storage.scope import TenantScope

# Tenants of this module: "rotate" has its issuer rotated, "policy" gets a policy of its own.
TENANTS = {"alpha": True, "beta": True, "open": False, "rotate": True, "policy": True}
RETRY_AFTER = 3 * 3600
EXPLANATION = "https://status.certplane.test/ari"
HOUR = timedelta(hours=1)
OTHER_KEY_ID = b64(bytes(range(20)))  # an AKI keyIdentifier no issuer of this platform has


@pytest.fixture(scope="module")
def platform(backend, tmp_path_factory, http01_port) -> Iterator[Platform]:
    """This module's platform: the shared one's settings plus ARI's interval and explanation."""
    directory = tmp_path_factory.mktemp(f"ari-{backend}")
    acme = AcmeConfig(
        caa_identities=("certplane.test",),
        finalize_deadline_seconds=5,
        ari_retry_after_seconds=RETRY_AFTER,
        ari_explanation_url=EXPLANATION,
    )
    with database_url(backend, directory) as url:
        yield provision(make_config(directory, url, http01_port=http01_port, acme=acme), TENANTS)


# -- helpers ------------------------------------------------------------------------------------


def renewal_info(client: RawClient, cert_id: str) -> requests.Response:
    """An unauthenticated GET of the certificate's renewalInfo resource (RFC 9773 §4.1)."""
    return requests.get(f"{client.directory['renewalInfo']}/{cert_id}", timeout=30)


def leaf(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled(cert: x509.Certificate, fractions: tuple[float, float]) -> dict[str, str]:
    """notBefore + fraction × lifetime for both ends, in whole seconds (truncated)."""
    not_before = cert.not_valid_before_utc
    lifetime = cert.not_valid_after_utc - not_before
    start, end = (not_before + lifetime * f for f in fractions)
    return {"start": rfc3339(start), "end": rfc3339(end)}


def in_the_past(since: datetime) -> dict[str, str]:
    """The window of a certificate to replace now: it ends an hour before ``since``."""
    end = since.replace(microsecond=0) - HOUR
    return {"start": rfc3339(end - HOUR), "end": rfc3339(end)}


def assert_window(response: requests.Response, window: dict[str, str], moved: bool) -> None:
    """The full answer: the window, explanationURL only when moved, the polling interval."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    expected: dict[str, Any] = {"suggestedWindow": window}
    if moved:
        expected["explanationURL"] = EXPLANATION
    assert response.json() == expected
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    assert response.headers["Cache-Control"] == f"public, max-age={RETRY_AFTER}"
    assert window["start"] < window["end"]


def stored(server, slug: str, cert: x509.Certificate) -> Certificate:
    """The certificate row as the server holds it."""

    async def read() -> Certificate:
        services = server.app[SERVICES]
        tenant = await services.uow.tenants.by_slug(slug)
        async with services.uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            found = await tx.certificates.get_by_serial(format(cert.serial_number, "x"))
        assert found is not None
        return found

    return server.call(read)


def issuers(server, slug: str) -> list[IssuerRecord]:
    return server.call(lambda: server.provisioner().issuers(slug))


def new_order(client: RawClient, name: str, replaces: Any = None) -> requests.Response:
    payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": name}]}
    if replaces is not None:
        payload["replaces"] = replaces
    return client.post(client.directory["newOrder"], payload)


def already_replaced(response: requests.Response, cert_id: str) -> None:
    assert response.status_code == 409, response.text
    assert problem(response) == {
        "type": ERR + "alreadyReplaced",
        "detail": f"certificate {cert_id} is already replaced by another order that is not invalid",
        "status": 409,
    }


# -- the directory -----------------------------------------------------------------------------


def test_directory_names_the_renewal_info_resource(register, platform):
    """RFC 9773 §3: renewalInfo in the directory, one per tenant."""
    base = platform.config.server.base_url
    for slug in ("open", "alpha"):
        directory = requests.get(platform.directory(slug), timeout=30).json()
        assert directory["renewalInfo"] == f"{base}/acme/{slug}/renewal-info"


# -- the suggested window ----------------------------------------------------------------------


def test_a_fresh_certificate_gets_the_builtin_window(flow):
    """The built-in policy's window (from two thirds of the lifetime on), computed from the
    certificate's own notBefore and notAfter; Retry-After and Cache-Control are the configured
    interval; no explanationURL; Link rel=index like every resource (RFC 8555 §7.1)."""
    f = flow("open")
    _, pem = f.issued("fresh.ari.localhost")
    cert = leaf(pem)
    fractions = Policy.builtin().renewal_window
    assert fractions[0] == pytest.approx(2 / 3, abs=1e-4)
    response = renewal_info(f.client, cert_id_of(cert))
    assert_window(response, scheduled(cert, fractions), moved=False)
    assert response.links["index"]["url"] == f.client.directory_url
    assert requests.head(response.url, timeout=30).status_code == 200


def test_the_tenant_policy_sets_the_fractions(flow, server):
    """A policy with other fractions, activated through the management API, applies at once to
    certificates issued before it, and to no other tenant."""
    f, elsewhere = flow("policy"), flow("open")
    _, pem = f.issued("pol.ari.localhost")
    cert = leaf(pem)
    _, other_pem = elsewhere.issued("nopol.ari.localhost")
    other = leaf(other_pem)
    admin = ApiClient(server.api_url, server.token("ada", "tenant-admin", tenant="policy"))
    document = {
        "schema": "certplane/policy/v1",
        "renewal": {"window_start": 0.5, "window_end": 0.6},
    }
    created = admin.post("/tenants/policy/policies", {"document": document})
    assert created.status_code == 201, created.text
    activated = admin.post(f"/tenants/policy/policies/{created.json()['version']}/activate")
    assert activated.json()["status"] == "active", activated.text

    assert_window(renewal_info(f.client, cert_id_of(cert)), scheduled(cert, (0.5, 0.6)), False)
    builtin = scheduled(other, Policy.builtin().renewal_window)
    assert_window(renewal_info(elsewhere.client, cert_id_of(other)), builtin, moved=False)


def test_revocation_moves_the_window_into_the_past(flow):
    """A revoked certificate's window ends an hour before its revocation: renew now (§4.2).
    Its replacement order is accepted, and names it."""
    f = flow("open")
    _, pem = f.issued("revoked.ari.localhost")
    cert = leaf(pem)
    cert_id = cert_id_of(cert)
    builtin = scheduled(cert, Policy.builtin().renewal_window)
    assert_window(renewal_info(f.client, cert_id), builtin, moved=False)
    der = cert.public_bytes(Encoding.DER)
    assert f.client.post(f.client.directory["revokeCert"], {"certificate": b64(der)}).ok

    revoked_at = stored(f.server, "open", cert).revoked_at
    assert revoked_at is not None
    response = renewal_info(f.client, cert_id)
    assert_window(response, in_the_past(revoked_at), moved=True)
    end = datetime.fromisoformat(response.json()["suggestedWindow"]["end"])
    assert end <= datetime.now(UTC) - HOUR + timedelta(seconds=1)
    replacement = new_order(f.client, "revoked.ari.localhost", cert_id)
    assert replacement.status_code == 201, replacement.text
    assert replacement.json()["replaces"] == cert_id


def test_issuer_rotation_moves_the_window_into_the_past(flow, server):
    """After `rotate_issuer`, every certificate of the retired issuer gets a window ending an
    hour before the retirement; a certificate of the new issuer keeps the schedule."""
    f = flow("rotate")
    _, pem = f.issued("old.rotate.localhost")
    before = leaf(pem)
    (active,) = [i for i in issuers(server, "rotate") if i.status == IssuerStatus.ACTIVE.value]
    fractions = Policy.builtin().renewal_window
    assert_window(renewal_info(f.client, cert_id_of(before)), scheduled(before, fractions), False)

    new = server.call(lambda: server.provisioner().rotate_issuer("rotate", active.id))
    (retired,) = [i for i in issuers(server, "rotate") if i.id == active.id]
    assert retired.status == IssuerStatus.RETIRED.value and retired.retired_at is not None
    moved = in_the_past(retired.retired_at)
    assert_window(renewal_info(f.client, cert_id_of(before)), moved, moved=True)

    _, pem = f.issued("new.rotate.localhost")
    after = leaf(pem)
    assert stored(server, "rotate", after).issuer_id == new.id
    assert_window(renewal_info(f.client, cert_id_of(after)), scheduled(after, fractions), False)


# -- what is not a certificate of this tenant ----------------------------------------------------


def _not_found(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 404, response.text
    return problem(response)


def test_unknown_and_foreign_certificates_are_not_found(flow, register):
    """An unknown CertID, the right serial with another AKI, the wrong serial with the right
    AKI, and alpha's certificate asked at beta: all the same 404 (RFC 8555 §6.7: malformed)."""
    f = flow("alpha")
    _, pem = f.issued("iso.alpha.localhost")
    key_id, serial = cert_id_of(leaf(pem)).split(".")
    beta = register("beta")
    missing = _not_found(renewal_info(beta, f"{OTHER_KEY_ID}.AQ"))
    assert missing == {"type": ERR + "malformed", "detail": "certificate not found", "status": 404}
    assert _not_found(renewal_info(f.client, f"{OTHER_KEY_ID}.{serial}")) == missing
    assert _not_found(renewal_info(f.client, f"{key_id}.AQ")) == missing
    assert _not_found(renewal_info(beta, f"{key_id}.{serial}")) == missing
    assert renewal_info(f.client, f"{key_id}.{serial}").status_code == 200


@pytest.mark.parametrize(
    ("cert_id", "reason"),
    [
        ("not-a-cert-id", "expected base64url(keyIdentifier) '.' base64url(serial)"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ=.AIdlQyE", "the keyIdentifier is not unpadded base64url"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.h2VDIQ", "the serial is negative"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AA", "the serial is zero"),
    ],
)
def test_a_cert_id_that_does_not_parse_is_malformed(register, cert_id, reason):
    response = renewal_info(register("open"), cert_id)
    assert response.status_code == 400, response.text
    assert problem(response) == {
        "type": ERR + "malformed",
        "detail": f"not an ARI CertID (RFC 9773 §4.1): {reason}",
        "status": 400,
    }


def test_renewal_info_is_a_plain_get(register):
    """RFC 9773 §6: unauthenticated GET, not POST-as-GET: a POST is 405; an unknown tenant's
    renewalInfo is 404 like any of its URLs."""
    client = register("open")
    url = f"{client.directory['renewalInfo']}/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    posted = client.post(url)
    assert posted.status_code == 405 and problem(posted)["type"] == ERR + "malformed"
    elsewhere = url.replace("/acme/open/", "/acme/nowhere/")
    assert _not_found(requests.get(elsewhere, timeout=30))["detail"] == "tenant not found"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1))
def test_any_path_segment_is_answered_without_a_server_error(register_once, text):
    response = renewal_info(register_once, requests.utils.quote(text, safe=""))
    assert response.status_code in (200, 400, 404), response.text
    if response.status_code != 200:
        problem(response)


@pytest.fixture
def register_once(register) -> RawClient:
    return register("open")


# -- replaces (RFC 9773 §5) ----------------------------------------------------------------------


def test_replaces_is_stored_reflected_and_claims_the_certificate(flow):
    """The replacement order answers 201 with `replaces`, and so does every fetch of it; the
    certificate is claimed by that order; a second replacement order is 409 alreadyReplaced."""
    f = flow("open")
    original, pem = f.issued("claim.ari.localhost")
    assert "replaces" not in original
    cert = leaf(pem)
    cert_id = cert_id_of(cert)
    response = new_order(f.client, "claim.ari.localhost", cert_id)
    assert response.status_code == 201, response.text
    assert response.json()["replaces"] == cert_id
    url = response.headers["Location"]
    assert f.client.post(url).json()["replaces"] == cert_id
    assert stored(f.server, "open", cert).replaced_by_order == url.rsplit("/", 1)[1]

    already_replaced(new_order(f.client, "claim.ari.localhost", cert_id), cert_id)
    assert stored(f.server, "open", cert).replaced_by_order == url.rsplit("/", 1)[1]


def test_an_invalid_replacement_order_releases_the_certificate(flow):
    """Only an order that is not invalid keeps the claim (§5): after the first replacement
    order became invalid (its authorization deactivated), a second one takes the claim over;
    once that one is valid — the certificate is replaced — every later one is refused."""
    f = flow("open")
    _, pem = f.issued("retry.ari.localhost")
    cert = leaf(pem)
    cert_id = cert_id_of(cert)
    first = new_order(f.client, "retry.ari.localhost", cert_id)
    assert first.status_code == 201, first.text
    (authz,) = first.json()["authorizations"]
    assert f.client.post(authz, {"status": "deactivated"}).status_code == 200
    assert f.client.post(first.headers["Location"]).json()["status"] == "invalid"

    second = new_order(f.client, "retry.ari.localhost", cert_id)
    assert second.status_code == 201, second.text
    order = {"url": second.headers["Location"], **second.json()}
    assert stored(f.server, "open", cert).replaced_by_order == order["url"].rsplit("/", 1)[1]
    f.validate(order)
    finalized = f.finalize(f.client.post(order["url"]).json())
    assert finalized.json()["status"] == "valid", finalized.text
    already_replaced(new_order(f.client, "retry.ari.localhost", cert_id), cert_id)


def _race(client: RawClient, payload: dict[str, Any]) -> list[int]:
    """Two newOrders with the same payload, sent at the same moment on two connections."""
    url = client.directory["newOrder"]
    bodies = [json.dumps(client.body(url, payload)).encode() for _ in range(2)]
    start = threading.Barrier(2)

    def send(body: bytes) -> int:
        session = requests.Session()
        start.wait(timeout=30)
        return session.post(url, data=body, headers={"Content-Type": JOSE}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sorted(pool.map(send, bodies))


def test_concurrent_replacement_orders_one_wins(flow):
    """Two newOrders naming the same certificate at once: one 201, one 409 alreadyReplaced,
    each time, and the certificate is claimed by the order that won."""
    f = flow("open")
    for round_ in range(3):
        name = f"race{round_}.ari.localhost"
        _, pem = f.issued(name)
        cert = leaf(pem)
        payload = {"identifiers": [{"type": "dns", "value": name}], "replaces": cert_id_of(cert)}
        assert _race(f.client, payload) == [201, 409]
        assert stored(f.server, "open", cert).replaced_by_order is not None
