"""certbot 5 and ACME Renewal Information (RFC 9773): `certbot renew` without --force-renewal
leaves a certificate alone while its suggested window is in the future, and renews it once
the server moves the window into the past (an issuer rotation, then a revocation).

How certbot 5 decides (certbot/_internal/renewal.py, ``should_autorenew``): it renews when the
ARI renewal time (a random moment of the suggested window) has passed, or OCSP says revoked,
or ``renew_before_expiry`` says so; only when neither ARI nor ``renew_before_expiry`` gives an
answer does it fall back to two thirds of the lifetime. It asks ARI at most once per
Retry-After (``[acme_renewal_info] ari_retry_after`` in the lineage's renewal file).

So that ARI alone can drive a renewal here: the lineage says ``renew_before_expiry = 1 day``
(a 90-day certificate is not due by that), the tenant's leaves carry no OCSP URL (certbot cannot
learn of the revocation that way), and before each `renew` the test moves ``ari_retry_after``
into the past, as the passing of the server's Retry-After would.

certbot 5.8 (with acme 5.9) does not send ``replaces`` in its newOrder (``ClientV2.new_order``
builds the order from identifiers and profile only), so the renewal order cannot name the old
certificate; the test checks that whatever it sends is consistent with that, and
tests/integration/test_ari.py covers ``replaces`` on the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import configobj
import pytest
from cptest.certbot_cli import CertbotHome, CertbotRun
from cptest.databases import database_url
from cptest.server import Platform, ServerThread, make_config, provision
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID

from certplane.server.app import SERVICES
from certplane.server.config import AcmeConfig
from certplane.server.model import Certificate, IssuerStatus
from certplane.server.ra.ari import cert_id_of
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

pytestmark = [
    pytest.mark.e2e,
    # One backend: the ARI window and replacement claims run on both in the integration suite.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="module"),
]

SLUG, NAME = "ari", "ari.localhost"
RETRY_AFTER = 4 * 3600
SUPERSEDED = 4


@dataclass
class Lab:
    platform: Platform
    server: ServerThread
    http01_port: int

    def renewal_info_url(self, cert: x509.Certificate) -> str:
        return f"{self.platform.config.server.base_url}/acme/{SLUG}/renewal-info/{cert_id_of(cert)}"

    def new_order_url(self) -> str:
        return f"{self.platform.config.server.base_url}/acme/{SLUG}/new-order"

    def stored(self, cert: x509.Certificate) -> Certificate:
        async def read() -> Certificate | None:
            async with self._tenant_tx() as tx:
                return await tx.certificates.get_by_serial(format(cert.serial_number, "x"))

        found = self.server.call(read)
        assert found is not None
        return found

    def rotate_issuer(self) -> str:
        """Retire the tenant's active issuer in favour of a new one; returns the new one's id."""
        provisioner = self.server.provisioner()
        (active,) = [
            issuer
            for issuer in self.server.call(lambda: provisioner.issuers(SLUG))
            if issuer.status == IssuerStatus.ACTIVE.value
        ]
        return str(self.server.call(lambda: provisioner.rotate_issuer(SLUG, active.id)).id)

    def revoke(self, cert: x509.Certificate) -> None:
        """Revoke through the RA's revocation use case, as the account that ordered it."""
        services = self.server.app[SERVICES]

        async def revoke() -> None:
            async with self._tenant_tx(write=True) as tx:
                stored = await tx.certificates.get_by_serial(format(cert.serial_number, "x"))
                assert stored is not None
                account = await tx.accounts.get(stored.account_id)
                await services.revocation.revoke(
                    tx,
                    account=account,
                    signing_key=None,
                    certificate_der=cert.public_bytes(Encoding.DER),
                    reason=SUPERSEDED,
                )

        self.server.call(revoke)

    @contextlib.asynccontextmanager
    async def _tenant_tx(self, *, write: bool = False) -> AsyncIterator[TenantTx]:
        uow = self.server.app[SERVICES].uow
        tenant = await uow.tenants.by_slug(SLUG)
        assert tenant is not None
        async with uow.begin(TenantScope(tenant.id, tenant.slug), write=write) as tx:
            yield tx


@pytest.fixture(scope="module")
def lab(backend, tmp_path_factory, http01_port) -> Iterator[Lab]:
    directory = tmp_path_factory.mktemp(f"certbot-ari-{backend}")
    acme = AcmeConfig(finalize_deadline_seconds=5, ari_retry_after_seconds=RETRY_AFTER)
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port, acme=acme)
        platform = provision(config, {SLUG: False})
        server = ServerThread(config).start()
        try:
            server.call(lambda: server.provisioner().set_tenant_aia(SLUG, ocsp=False))
            yield Lab(platform, server, http01_port)
        finally:
            server.stop()
        assert not server.sql_guard.violations, server.sql_guard.violations


# -- the lineage's renewal file -------------------------------------------------------------------


def renewal_file(home: CertbotHome) -> Path:
    return home.config_dir / "renewal" / f"{NAME}.conf"


def only_ari_can_renew(home: CertbotHome) -> None:
    """``renew_before_expiry = 1 day``: certbot's own schedule will not renew a fresh
    certificate, and it no longer falls back to two thirds of the lifetime."""
    conf = configobj.ConfigObj(str(renewal_file(home)), encoding="utf-8")
    conf["renew_before_expiry"] = "1 day"
    conf.write()


def ari_retry_after(home: CertbotHome) -> datetime | None:
    """When certbot will next ask ARI (naive local time, as certbot writes it)."""
    conf = configobj.ConfigObj(str(renewal_file(home)), encoding="utf-8")
    stored = conf.get("acme_renewal_info", {}).get("ari_retry_after")
    return None if stored is None else datetime.fromisoformat(stored)


def retry_after_has_passed(home: CertbotHome) -> None:
    """What the passing of the server's Retry-After does: certbot may ask ARI again."""
    conf = configobj.ConfigObj(str(renewal_file(home)), encoding="utf-8")
    conf["acme_renewal_info"]["ari_retry_after"] = "2000-01-01T00:00:00"
    conf.write()


# -- checks ---------------------------------------------------------------------------------------


def renew(home: CertbotHome) -> CertbotRun:
    return home.run("renew", "--cert-name", NAME, "--no-random-sleep-on-renew")


def window_certbot_saw(lab: Lab, run: CertbotRun, cert: x509.Certificate) -> dict[str, datetime]:
    """The suggested window of ``cert`` as the server answered certbot's GET (RFC 9773 §4)."""
    url = lab.renewal_info_url(cert)
    (answer,) = [e for e in run.exchanges() if e.method == "GET" and e.url == url]
    assert answer.status == 200, answer.body
    assert answer.headers["retry-after"] == str(RETRY_AFTER)
    window = answer.json()["suggestedWindow"]
    return {k: datetime.fromisoformat(v) for k, v in window.items()}


def assert_renewed_by_ari(lab: Lab, home: CertbotHome, run: CertbotRun, old: x509.Certificate):
    """certbot saw a window in the past, renewed, and its newOrder names nothing but ``old``."""
    window = window_certbot_saw(lab, run, old)
    assert window["start"] < window["end"] < datetime.now(UTC)
    assert "Certificate is due for renewal, auto-renewing..." in run.log
    assert "Congratulations, all renewals succeeded" in run.output
    (created,) = run.posts_to(lab.new_order_url())
    assert created.status == 201, created.body
    # certbot 5.8 sends no `replaces` (see the module docstring); a later certbot must name old.
    assert created.payload().get("replaces") in (None, cert_id_of(old))
    new = home.lineage(NAME).cert
    assert new.serial_number != old.serial_number
    return new


def test_certbot_renews_when_the_server_moves_the_window(lab, tmp_path):
    home = CertbotHome(tmp_path / "certbot", lab.platform.directory(SLUG))
    standalone = ("--standalone", "--http-01-address", "127.0.0.1")
    home.run("certonly", *standalone, "--http-01-port", str(lab.http01_port), "-d", NAME)
    first = home.lineage(NAME).cert
    assert all(
        d.access_method != AuthorityInformationAccessOID.OCSP
        for d in first.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    )  # certbot cannot learn of a revocation through OCSP
    only_ari_can_renew(home)

    # The window is in the future: no renewal, and certbot keeps the server's Retry-After.
    run = renew(home)
    assert "Certificate not yet due for renewal" in run.output
    assert window_certbot_saw(lab, run, first)["start"] > datetime.now(UTC) + timedelta(days=50)
    assert run.posts_to(lab.new_order_url()) == []
    assert home.lineage(NAME).cert.serial_number == first.serial_number
    next_check = ari_retry_after(home)
    assert next_check is not None
    assert next_check - datetime.now() > timedelta(seconds=RETRY_AFTER - 300)

    # The issuer is rotated: the window moves into the past and certbot renews.
    new_issuer = lab.rotate_issuer()
    retry_after_has_passed(home)
    second = assert_renewed_by_ari(lab, home, renew(home), first)
    assert lab.stored(second).issuer_id == new_issuer

    # The new certificate is fine until the server revokes it; then certbot renews again.
    retry_after_has_passed(home)
    assert "Certificate not yet due for renewal" in renew(home).output
    lab.revoke(second)
    retry_after_has_passed(home)
    third = assert_renewed_by_ari(lab, home, renew(home), second)
    assert lab.stored(third).issuer_id == new_issuer
