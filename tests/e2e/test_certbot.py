"""certbot 5 end to end: the real CLI against a running certplane, on SQLite and PostgreSQL.

Each test drives ``certbot`` in a subprocess with a home of its own under ``tmp_path`` and checks
real outcomes: the files certbot wrote, the certificates parsed and path-validated to the platform
root through the tenant's intermediate, ``certbot certificates``/``show_account`` output, the
server's answers recorded in certbot's debug log, and what the server stored.

http-01 runs certbot ``--standalone`` on the port the server validates against (names under
``.localhost`` resolve to loopback); dns-01 runs ``--manual`` with hooks that publish TXT records
in pebble-challtestsrv, the server's only DNS server.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from acme import messages
from cptest.acmelib import new_client, register
from cptest.certbot_cli import (
    HOOK_RECORD_ENV,
    MANAGEMENT_URL_ENV,
    CertbotHome,
    CertbotRun,
    Lineage,
    b64url_decode,
    hook_calls,
    listed_certificates,
    write_dns_hooks,
)
from cptest.challtestsrv import ChallTestSrv
from cptest.databases import database_url
from cptest.server import Platform, ServerThread, make_config, provision
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store

from certplane.server.app import SERVICES
from certplane.server.model import Certificate, CertificateStatus
from certplane.server.ra.provisioning import NewEab
from certplane.server.storage.scope import TenantScope
from certplane.server.storage.uow import TenantTx

pytestmark = pytest.mark.e2e

TENANTS = {"alpha": True, "beta": True, "open": False}
ERR = "urn:ietf:params:acme:error:"

# Runtime budget (about 90 s for the file on 2 cores; each issuance costs certbot ~2 s of its own
# fixed polling sleeps): these tests run on SQLite only. Every flow that touches the database
# differently (registration and EAB binding, issuance over http-01 and dns-01, revocation,
# account update and deactivation) also runs on PostgreSQL.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="module")
KEY_COMPROMISE, SUPERSEDED = 1, 4


@dataclass
class Deployment:
    """The server under test, its DNS, and what certbot needs to reach them."""

    platform: Platform
    server: ServerThread
    dns: ChallTestSrv
    http01_port: int

    def acme_url(self, slug: str, path: str) -> str:
        return f"{self.platform.config.server.base_url}/acme/{slug}/{path}"

    def home(self, slug: str, root: Path) -> CertbotHome:
        """A fresh certbot home for tenant ``slug``, with dns-01 hooks and their environment."""
        env = {
            MANAGEMENT_URL_ENV: self.dns.management_url,
            HOOK_RECORD_ENV: str(root / "hooks.jsonl"),
        }
        return CertbotHome(root, self.platform.directory(slug), env)

    def http01(self) -> tuple[str, ...]:
        """certbot's standalone authenticator on the port the server's http-01 dials."""
        port = str(self.http01_port)
        return ("--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", port)

    @staticmethod
    def dns01(home: CertbotHome) -> tuple[str, ...]:
        """certbot's manual authenticator with hooks that publish TXT records in challtestsrv."""
        auth, cleanup = write_dns_hooks(home.root / "hooks")
        return (
            "--manual",
            "--preferred-challenges", "dns",
            "--manual-auth-hook", auth,
            "--manual-cleanup-hook", cleanup,
        )  # fmt: skip

    def root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.platform.root_pem)

    def intermediate(self, slug: str) -> x509.Certificate:
        """The tenant's active issuing CA, as the server stored it."""

        async def read() -> str:
            async with self._tenant_tx(slug) as tx:
                (issuer,) = await tx.issuers.active()
            return issuer.certificate_pem

        return x509.load_pem_x509_certificate(self.server.call(read).encode())

    def stored(self, slug: str, cert: x509.Certificate) -> Certificate:
        """The server's record of ``cert`` (looked up by serial in the tenant)."""

        async def read() -> Certificate | None:
            async with self._tenant_tx(slug) as tx:
                return await tx.certificates.get_by_serial(format(cert.serial_number, "x"))

        stored = self.server.call(read)
        assert stored is not None, f"the server does not know serial {cert.serial_number:x}"
        return stored

    @contextlib.asynccontextmanager
    async def _tenant_tx(self, slug: str) -> AsyncIterator[TenantTx]:
        uow = self.server.app[SERVICES].uow
        async with uow.platform(write=False) as platform:
            tenant = await platform.tenant_by_slug(slug)
        assert tenant is not None
        async with uow.begin(TenantScope(tenant.id, tenant.slug), write=False) as tx:
            yield tx


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dns() -> Iterator[ChallTestSrv]:
    with ChallTestSrv() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(
    backend: str, tmp_path_factory: pytest.TempPathFactory, http01_port: int, dns: ChallTestSrv
) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp(f"certbot-e2e-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port, dns_servers=(dns.dns_server,))
        platform = provision(config, TENANTS)
        thread = ServerThread(config).start()
        try:
            yield Deployment(platform, thread, dns, http01_port)
        finally:
            thread.stop()
        guard = thread.sql_guard
        assert not guard.violations, "SQL on tenant tables without tenant_id:\n" + "\n".join(
            guard.violations
        )


@pytest.fixture
def new_home(deployment: Deployment, tmp_path: Path) -> Callable[..., CertbotHome]:
    """``new_home(slug, label="home")``: an empty certbot home for that tenant."""
    return lambda slug, label="home": deployment.home(slug, tmp_path / label)


@pytest.fixture(scope="module")
def alpha_account(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> CertbotHome:
    """One account at the EAB tenant ``alpha``, registered once with its EAB key."""
    home = deployment.home("alpha", tmp_path_factory.mktemp("alpha-account"))
    eab = deployment.platform.eab["alpha"]
    home.run("register", *eab_flags(eab))
    return home


@pytest.fixture
def alpha_home(new_home: Callable[..., CertbotHome], alpha_account: CertbotHome) -> CertbotHome:
    """A fresh certbot home that orders as ``alpha_account``."""
    home = new_home("alpha")
    home.adopt_accounts(alpha_account)
    return home


# -- checks -----------------------------------------------------------------------------------


def eab_flags(eab: NewEab) -> tuple[str, str]:
    """``--flag=value`` form: a base64url kid or HMAC key may start with "-", which certbot's
    argument parser would otherwise take for an option ("expected one argument")."""
    return (f"--eab-kid={eab.kid}", f"--eab-hmac-key={eab.hmac_key}")


def domains(names: list[str]) -> tuple[str, ...]:
    return tuple(arg for name in names for arg in ("-d", name))


def assert_issued(deployment: Deployment, slug: str, lineage: Lineage, names: list[str]) -> None:
    """SANs are exactly ``names``; fullchain = cert + chain; chain = [the tenant's intermediate],
    which signed the leaf; every name path-validates to the platform root (RFC 5280, serverAuth);
    the private key is the certificate's; the server stored it as issued."""
    assert lineage.dns_names() == sorted(names)
    assert lineage.fullchain == [lineage.cert, *lineage.chain]
    intermediate = deployment.intermediate(slug)
    assert [c.public_bytes(Encoding.DER) for c in lineage.chain] == [
        intermediate.public_bytes(Encoding.DER)
    ]
    lineage.cert.verify_directly_issued_by(intermediate)
    store = Store([deployment.root()])
    for name in names:
        host = name.replace("*", "any", 1)
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(host))
        path = verifier.verify(lineage.cert, lineage.chain)
        assert [c.subject for c in path] == [
            lineage.cert.subject,
            intermediate.subject,
            deployment.root().subject,
        ]
    assert lineage.cert.public_key() == lineage.privkey.public_key()
    stored = deployment.stored(slug, lineage.cert)
    assert stored.status is CertificateStatus.ISSUED
    assert sorted(i.value for i in stored.identifiers) == sorted(names)


def assert_openssl_verifies(deployment: Deployment, home: CertbotHome, name: str) -> None:
    """``openssl verify -purpose sslserver`` accepts the live cert with its chain."""
    root = home.root / "root.pem"
    root.write_bytes(deployment.platform.root_pem)
    live = home.live(name)
    argv = ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(root)]
    argv += ["-untrusted", str(live / "chain.pem"), str(live / "cert.pem")]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == f"{live / 'cert.pem'}: OK"


def assert_listed(home: CertbotHome, name: str, lineage: Lineage, key_type: str) -> None:
    """``certbot certificates`` lists the lineage with its serial, key type and identifiers."""
    listed = listed_certificates(home.run("certificates").output)
    assert set(listed) == {name}
    entry = listed[name]
    assert entry["Serial Number"] == format(lineage.cert.serial_number, "x")
    assert entry["Key Type"] == key_type
    assert sorted(entry["Identifiers"].split()) == lineage.dns_names()
    assert entry["Certificate Path"] == str(home.live(name) / "fullchain.pem")


def crl_entry(
    deployment: Deployment, slug: str, cert: x509.Certificate
) -> x509.RevokedCertificate | None:
    """``cert``'s entry in the CRL at its own distribution point (a plain GET), after checking
    that the tenant's intermediate signed that CRL; None when the CRL does not list it."""
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (url,) = [name.value for point in points for name in point.full_name or ()]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(response.read())
    intermediate = deployment.intermediate(slug)
    assert crl.issuer == intermediate.subject
    assert crl.is_signature_valid(intermediate.public_key())
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number)


def crl_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def account_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


# -- 1. accounts ------------------------------------------------------------------------------


def test_register_with_eab(deployment, new_home):
    """`register --eab-kid --eab-hmac-key` at EAB tenant beta: the binding is an HS256 JWS
    naming the EAB kid and the newAccount URL (RFC 8555 §7.3.4), newAccount answers 201, certbot
    saves one account (meta, regr, private key) whose URI is under /acme/beta/acct/, and
    `show_account` reads it back from the server. The used EAB key cannot bind a second
    account: the server answers unauthorized and certbot shows its detail."""
    eab = deployment.platform.eab["beta"]
    home = new_home("beta")
    run = home.run("register", *eab_flags(eab))
    assert "Account registered." in run.output
    new_account = deployment.acme_url("beta", "new-account")
    (created,) = run.posts_to(new_account)
    assert created.status == 201
    binding = created.payload()["externalAccountBinding"]
    assert json.loads(b64url_decode(binding["protected"])) == {
        "alg": "HS256",
        "kid": eab.kid,
        "url": new_account,
    }
    uri = home.account()["uri"]
    assert uri.startswith(deployment.acme_url("beta", "acct/"))
    shown = home.run("show_account").output
    assert f"Account URL: {uri}" in shown
    assert "Email contact: ops@example.com" in shown

    second = new_home("beta", "second")
    again = second.run("register", *eab_flags(eab), check=False)
    assert again.returncode == 1
    assert "external account binding key is unknown or not usable" in again.output
    assert again.problem_types() == [ERR + "unauthorized"]
    assert second.account_dirs() == []


def test_register_without_eab_is_refused(deployment, new_home):
    """certbot reads `meta.externalAccountRequired` from the directory and refuses before any
    newAccount request (exit 1, "Server requires external account binding"), saving nothing.
    The server refuses on its own too: newAccount without a binding is externalAccountRequired."""
    home = new_home("beta")
    run = home.run("register", check=False)
    assert run.returncode == 1
    assert "Server requires external account binding" in run.output
    assert [url for _, url, _ in run.responses() if url.endswith("/new-account")] == []
    assert home.account_dirs() == []
    with urllib.request.urlopen(deployment.platform.directory("beta"), timeout=10) as response:
        assert json.load(response)["meta"]["externalAccountRequired"] is True

    with pytest.raises(messages.Error) as info:
        register(new_client(deployment.platform.directory("beta")), None)
    assert info.value.typ == ERR + "externalAccountRequired"


def test_open_tenant_registers_without_eab(deployment, new_home):
    """Tenant `open` needs no EAB: `register` answers 201 and the account is saved and shown."""
    home = new_home("open")
    run = home.run("register")
    assert ("POST", deployment.acme_url("open", "new-account"), 201) in run.responses()
    uri = home.account()["uri"]
    assert uri.startswith(deployment.acme_url("open", "acct/"))
    assert f"Account URL: {uri}" in home.run("show_account").output


# -- 2, 3. http-01 with certbot --standalone ---------------------------------------------------


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1"])
def test_standalone_http01_ecdsa(deployment, alpha_home, curve):
    """`certonly --standalone` for two names with an ECDSA key on `curve`: a certificate for
    exactly those names, signed by alpha's intermediate, for the key certbot generated, ordered
    by alpha's account, listed by `certbot certificates`."""
    names = [f"www.{curve}.alpha.localhost", f"api.{curve}.alpha.localhost"]
    key_args = ("--key-type", "ecdsa", "--elliptic-curve", curve)
    alpha_home.run(
        "certonly", *deployment.http01(), *domains(names), *key_args, "--cert-name", "web"
    )
    lineage = alpha_home.lineage("web")
    assert_issued(deployment, "alpha", lineage, names)
    assert isinstance(lineage.privkey, ec.EllipticCurvePrivateKey)
    assert lineage.privkey.curve.name == curve
    stored = deployment.stored("alpha", lineage.cert)
    assert stored.account_id == account_id(alpha_home.account()["uri"])
    assert_listed(alpha_home, "web", lineage, "ECDSA")
    assert_openssl_verifies(deployment, alpha_home, "web")


@SQLITE_ONLY
def test_standalone_http01_rsa(deployment, alpha_home):
    """`--key-type rsa --rsa-key-size 2048`: the certificate carries certbot's 2048-bit RSA key."""
    names = ["rsa.alpha.localhost"]
    key_args = ("--key-type", "rsa", "--rsa-key-size", "2048")
    alpha_home.run("certonly", *deployment.http01(), *domains(names), *key_args)
    lineage = alpha_home.lineage("rsa.alpha.localhost")
    assert_issued(deployment, "alpha", lineage, names)
    assert isinstance(lineage.privkey, rsa.RSAPrivateKey)
    assert lineage.privkey.key_size == 2048
    assert_listed(alpha_home, "rsa.alpha.localhost", lineage, "RSA")


# -- 4, 5. dns-01 with certbot --manual and challtestsrv ---------------------------------------


def test_dns01_manual_hooks(deployment, new_home):
    """`certonly --manual --preferred-challenges dns` at tenant open (certbot registers on the
    way): the auth hook published one TXT value per name, the server validated them over DNS,
    the cleanup hook removed them, and the certificate is for exactly those names."""
    home = new_home("open")
    names = ["dns.example.com", "www.dns.example.com"]
    run = home.run("certonly", *deployment.dns01(home), *domains(names), "--cert-name", "dns")
    answered = [e.json()["type"] for e in run.exchanges() if "/chall/" in e.url]
    assert answered == ["dns-01", "dns-01"]
    calls = hook_calls(home.root / "hooks.jsonl")
    assert sorted((kind, domain) for kind, domain, _ in calls) == sorted(
        (kind, name) for kind in ("auth", "cleanup") for name in names
    )
    for name in names:
        assert deployment.dns.txt(f"_acme-challenge.{name}") == []
    lineage = home.lineage("dns")
    assert_issued(deployment, "open", lineage, names)
    assert_listed(home, "dns", lineage, "ECDSA")


@SQLITE_ONLY
def test_wildcard_and_base_name_dns01(deployment, new_home):
    """`*.wild.example.com` + `wild.example.com`: two authorizations for identifier
    `wild.example.com`, one with `"wildcard": true` (RFC 8555 §7.1.4), both validated at
    `_acme-challenge.wild.example.com` with different values; the certificate covers the base
    name and any single label below it."""
    home = new_home("open")
    names = ["*.wild.example.com", "wild.example.com"]
    run = home.run("certonly", *deployment.dns01(home), *domains(names), "--cert-name", "wild")
    authzs = {e.url: e.json() for e in run.exchanges() if "/authz/" in e.url}
    assert sorted(
        (a["identifier"]["value"], a.get("wildcard", False), a["status"]) for a in authzs.values()
    ) == [("wild.example.com", False, "valid"), ("wild.example.com", True, "valid")]
    auths = [(d, v) for kind, d, v in hook_calls(home.root / "hooks.jsonl") if kind == "auth"]
    assert [d for d, _ in auths] == ["wild.example.com", "wild.example.com"]
    assert len({v for _, v in auths}) == 2
    assert deployment.dns.txt("_acme-challenge.wild.example.com") == []
    lineage = home.lineage("wild")
    assert_issued(deployment, "open", lineage, names)
    assert_openssl_verifies(deployment, home, "wild")


# -- 6. renewal -------------------------------------------------------------------------------


@SQLITE_ONLY
def test_renew_force_renewal(deployment, alpha_home):
    """`renew --force-renewal` replaces the lineage's certificate: a new serial and a new key for
    the same names, both certificates issued by the server, `certbot certificates` shows the new
    one, and the archive keeps version 1 beside version 2."""
    names = ["renew.alpha.localhost", "www.renew.alpha.localhost"]
    alpha_home.run("certonly", *deployment.http01(), *domains(names), "--cert-name", "renew")
    first = alpha_home.lineage("renew")
    run = alpha_home.run(
        "renew", "--cert-name", "renew", "--force-renewal", "--no-random-sleep-on-renew"
    )
    assert "Congratulations, all renewals succeeded" in run.output
    second = alpha_home.lineage("renew")
    assert second.cert.serial_number != first.cert.serial_number
    assert second.cert.public_key() != first.cert.public_key()
    assert_issued(deployment, "alpha", second, names)
    assert deployment.stored("alpha", first.cert).status is CertificateStatus.ISSUED
    archive = alpha_home.config_dir / "archive" / "renew"
    assert {p.name for p in archive.glob("cert*.pem")} == {"cert1.pem", "cert2.pem"}
    assert_listed(alpha_home, "renew", second, "ECDSA")


# -- 7. revocation ----------------------------------------------------------------------------


def test_revoke_by_account_then_already_revoked(deployment, alpha_home):
    """`revoke --cert-path --reason keycompromise`, signed by the issuing account (`kid`):
    revokeCert answers 200, the server records reason 1, the CRL at the leaf's distribution
    point (unlisted before) now lists it as keyCompromise, and certbot (non-interactive) deletes
    the lineage.
    Revoking again answers 400 alreadyRevoked, and certbot exits 1 showing its detail."""
    alpha_home.run("certonly", *deployment.http01(), "-d", "revoke.alpha.localhost")
    saved = alpha_home.root / "revoked.pem"
    shutil.copy(alpha_home.live("revoke.alpha.localhost") / "cert.pem", saved)
    cert = x509.load_pem_x509_certificate(saved.read_bytes())
    revoke_url = deployment.acme_url("alpha", "revoke-cert")
    live_cert = str(alpha_home.live("revoke.alpha.localhost") / "cert.pem")
    assert crl_entry(deployment, "alpha", cert) is None

    run = alpha_home.run("revoke", "--cert-path", live_cert, "--reason", "keycompromise")
    assert "successfully revoked" in run.output
    assert ("POST", revoke_url, 200) in run.responses()
    (header,) = run.jws_headers(revoke_url)
    assert header["kid"] == alpha_home.account()["uri"] and "jwk" not in header
    stored = deployment.stored("alpha", cert)
    assert (stored.status, stored.revocation_reason) == (CertificateStatus.REVOKED, KEY_COMPROMISE)
    entry = crl_entry(deployment, "alpha", cert)
    assert entry is not None and crl_reason(entry) is x509.ReasonFlags.key_compromise
    assert not alpha_home.live("revoke.alpha.localhost").exists()
    assert listed_certificates(alpha_home.run("certificates").output) == {}

    again = alpha_home.run(
        "revoke", "--cert-path", str(saved), "--reason", "keycompromise", check=False
    )
    assert again.returncode == 1
    assert "certificate is already revoked" in again.output
    assert again.problem_types() == [ERR + "alreadyRevoked"]
    assert ("POST", revoke_url, 400) in again.responses()


@SQLITE_ONLY
def test_revoke_with_certificate_key(deployment, alpha_home, new_home):
    """`revoke --cert-path X --key-path Y` from a certbot home with no account for the tenant:
    certbot 5 signs revokeCert with the certificate's key (a `jwk` header, no `kid`), creates no
    account, and the server revokes (200, reason 4, listed as superseded in the CRL). Such a home
    has no lineage for the certificate, so `--no-delete-after-revoke` keeps certbot from trying
    to delete one (see the next test). A second attempt with the same key answers alreadyRevoked.
    """
    alpha_home.run("certonly", *deployment.http01(), "-d", "bykey.alpha.localhost")
    live = alpha_home.live("bykey.alpha.localhost")
    cert = alpha_home.lineage("bykey.alpha.localhost").cert
    holder = new_home("alpha", "keyholder")
    revoke_url = deployment.acme_url("alpha", "revoke-cert")
    by_key = ("--cert-path", str(live / "cert.pem"), "--key-path", str(live / "privkey.pem"))

    run = holder.run("revoke", *by_key, "--reason", "superseded", "--no-delete-after-revoke")
    assert "successfully revoked" in run.output
    assert ("POST", revoke_url, 200) in run.responses()
    (header,) = run.jws_headers(revoke_url)
    assert "kid" not in header
    assert header["jwk"]["crv"] == "P-256"
    assert holder.account_dirs() == []
    assert [url for _, url, _ in run.responses() if url.endswith("/new-account")] == []
    stored = deployment.stored("alpha", cert)
    assert (stored.status, stored.revocation_reason) == (CertificateStatus.REVOKED, SUPERSEDED)
    entry = crl_entry(deployment, "alpha", cert)
    assert entry is not None and crl_reason(entry) is x509.ReasonFlags.superseded

    again = holder.run("revoke", *by_key, "--no-delete-after-revoke", check=False)
    assert again.returncode == 1
    assert again.problem_types() == [ERR + "alreadyRevoked"]


@SQLITE_ONLY
def test_revoke_with_certificate_key_exits_1_when_certbot_has_no_lineage(
    deployment, alpha_home, new_home
):
    """certbot 5 behaviour worth knowing: without `--no-delete-after-revoke`, non-interactive
    certbot revokes by certificate key (the server answers 200 and revokes), then tries to delete
    the lineage for `--cert-path`, finds none in its own config dir and exits 1 with
    "No match found for cert-path"."""
    alpha_home.run("certonly", *deployment.http01(), "-d", "nolineage.alpha.localhost")
    live = alpha_home.live("nolineage.alpha.localhost")
    holder = new_home("alpha", "keyholder")
    by_key = ("--cert-path", str(live / "cert.pem"), "--key-path", str(live / "privkey.pem"))

    run = holder.run("revoke", *by_key, check=False)
    assert run.returncode == 1
    assert f"No match found for cert-path {live / 'cert.pem'}" in run.output
    assert ("POST", deployment.acme_url("alpha", "revoke-cert"), 200) in run.responses()
    cert = alpha_home.lineage("nolineage.alpha.localhost").cert
    assert deployment.stored("alpha", cert).status is CertificateStatus.REVOKED


# -- 8. account update and deactivation -------------------------------------------------------


def unregister(home: CertbotHome) -> Path:
    """Keep a copy of the account files, then `unregister`: the server answers the account
    update with 200 and certbot deletes its files. Returns the copy."""
    uri = home.account()["uri"]
    backup = home.root / "accounts-backup"
    shutil.copytree(home.config_dir / "accounts", backup)
    run = home.run("unregister")
    assert "Account deactivated." in run.output
    assert ("POST", uri, 200) in run.responses()
    assert home.account_dirs() == []
    return backup


def order_as_deactivated_account(
    deployment: Deployment, home: CertbotHome, backup: Path
) -> CertbotRun:
    """Restore the deactivated account's files and try `certonly` with it."""
    shutil.copytree(backup, home.config_dir / "accounts", dirs_exist_ok=True)
    return home.run("certonly", *deployment.http01(), "-d", "gone.open.localhost", check=False)


def test_update_account_and_unregister(deployment, new_home):
    """`update_account -m new@example.com` changes the contact the server holds (`show_account`
    reads it back from the server). `unregister` deactivates the account and certbot forgets it;
    with the old account files restored, a new order is refused with unauthorized
    ("account is deactivated") and nothing is issued."""
    home = new_home("open")
    home.run("register")
    uri = home.account()["uri"]
    run = home.run("update_account", email="new@example.com")
    assert "Your e-mail address was updated to new@example.com." in run.output
    assert ("POST", uri, 200) in run.responses()
    shown = home.run("show_account").output
    assert "Email contact: new@example.com" in shown
    assert "ops@example.com" not in shown

    backup = unregister(home)
    run = order_as_deactivated_account(deployment, home, backup)
    assert run.returncode == 1
    assert "account is deactivated" in run.output
    assert run.problem_types() == [ERR + "unauthorized"]
    assert not home.live("gone.open.localhost").exists()


@SQLITE_ONLY
def test_deactivated_account_is_answered_401(deployment, new_home):
    """RFC 8555 §7.3.6: "If the server receives a POST or POST-as-GET from a deactivated
    account, it MUST return an error response with status code 401 (Unauthorized) and type
    urn:ietf:params:acme:error:unauthorized"."""
    home = new_home("open")
    home.run("register")
    run = order_as_deactivated_account(deployment, home, unregister(home))
    assert run.problem_types() == [ERR + "unauthorized"]
    assert ("POST", deployment.acme_url("open", "new-order"), 401) in run.responses()
