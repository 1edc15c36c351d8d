"""Discovery end to end on a fixture host.

The host is ``fixtures/discovery/tree`` copied to a temporary root, with certificates and keys
written at test time, a fake ``/proc/net/tcp{,6}`` listing three live loopback listeners (a TLS
server choosing its certificate by SNI on 127.0.0.1, a TLS server on ::1 behind a ``::``
wildcard row, a plain-text server behind a ``0.0.0.0`` row) plus sockets that are not listening.
The report must equal the inventory built below, field by field.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from unit.agent.fixtures.discovery.loopback import (
    PROC_HEADER,
    LoopbackServer,
    hex_port,
    plain_handler,
    proc_row,
    server_context,
    tls_handler,
)
from unit.agent.fixtures.discovery.pki import Issued, TestPKI, ec_key, ed25519_key, rsa_key

from certplane.agent.discovery import (
    CertificateInfo,
    CertificateRecord,
    CertReference,
    ConfiguredAt,
    DiscoveryOptions,
    DiscoveryReport,
    FileLocation,
    Finding,
    ListenAddress,
    ListeningSocket,
    ParseError,
    ProbeResult,
    ServedAt,
    ServerConfig,
    SkippedFile,
    VirtualServer,
    discover,
)

FIXTURE = Path(__file__).parent / "fixtures" / "discovery" / "tree"
NOW = datetime.now(UTC).replace(microsecond=0)
CA = "CN=Certplane Discovery Test CA"
ROOTS = ("/etc/ssl/certs", "/etc/ssl/certplane", "/etc/nginx/certs", "/etc/letsencrypt")
MAX_FILE_SIZE = 64 * 1024

NGINX = "/etc/nginx/nginx.conf"
SHOP_CONF = "/etc/nginx/conf.d/shop.conf"
API_CONF = "/etc/nginx/conf.d/api.conf"
BROKEN_CONF = "/etc/nginx/conf.d/zz-broken.conf"
SITES = "/etc/nginx/sites-enabled/default"
APACHE = "/etc/apache2/apache2.conf"
PORTS = "/etc/apache2/ports.conf"
HTTP_SITE = "/etc/apache2/sites-enabled/000-default.conf"
SSL_SITE = "/etc/apache2/sites-enabled/default-ssl.conf"


@dataclass(frozen=True)
class Host:
    """The fixture host: its root, its fake procfs, its certificates and listener ports."""

    root: Path
    proc: Path
    certs: dict[str, Issued]
    tls_port: int
    tls6_port: int
    plain_port: int

    def options(self, **changes: object) -> DiscoveryOptions:
        options = DiscoveryOptions(
            host_root=self.root,
            certificate_paths=ROOTS,
            proc_root=self.proc,
            proc_byteorder="little",
            max_file_size=MAX_FILE_SIZE,
            expires_soon=timedelta(days=30),
            probe_timeout=3.0,
        )
        return replace(options, **changes)  # type: ignore[arg-type]


def issue(pki: TestPKI) -> dict[str, Issued]:
    """Every certificate of the scenario."""
    return {
        "ca": pki.ca,
        "shop": pki.leaf("shop.example.test", dns=["shop.example.test", "www.shop.example.test"]),
        "api": pki.leaf(
            "api.example.test",
            dns=["api.example.test"],
            ips=["127.0.0.1"],
            key=ec_key(ec.SECP384R1()),
        ),
        "api-old": pki.leaf(
            "api.example.test", dns=["api.example.test"], key=rsa_key(2048), days=20
        ),
        "secure": pki.leaf(
            "secure.example.test", dns=["secure.example.test", "www.secure.example.test"], days=10
        ),
        "snakeoil": pki.leaf("intranet", key=ed25519_key(), days=3650, self_signed=True),
        "expired": pki.leaf(
            "old.example.test", dns=["old.example.test"], start_days=-100, days=-10
        ),
        "legacy": pki.leaf("legacy.example.test", key=rsa_key(1024)),
        "stray": pki.leaf("stray.example.test"),
    }


def write_host_files(root: Path, certs: dict[str, Issued]) -> None:
    """Certificates, keys, symlinks and an oversized file below ``root``."""
    ssl, private = root / "etc" / "ssl", root / "etc" / "ssl" / "private"
    bundle = root / "etc" / "nginx" / "certs" / "shop.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(certs["shop"].pem + certs["ca"].pem)
    certs["shop"].write_key(private / "shop.key")
    certs["api"].write(ssl / "certplane" / "api.pem", private / "api.key")
    certs["secure"].write(ssl / "certs" / "secure.pem", private / "secure.key")
    certs["snakeoil"].write(
        ssl / "certs" / "ssl-cert-snakeoil.pem", private / "ssl-cert-snakeoil.key"
    )
    certs["ca"].write(ssl / "certs" / "certplane-ca.pem")
    certs["expired"].write(ssl / "certplane" / "expired.pem")
    certs["legacy"].write(ssl / "certplane" / "legacy.der", der=True)
    certs["stray"].write(root / "srv" / "stray.pem")
    (ssl / "certplane" / "current.pem").symlink_to("api.pem")
    (ssl / "certplane" / "outside.pem").symlink_to("../../../srv/stray.pem")
    (ssl / "certplane" / "big.pem").write_bytes(b"#" * (MAX_FILE_SIZE + 1))


def copy_tree(root: Path, ports: dict[str, int]) -> None:
    shutil.copytree(FIXTURE, root)
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for name, port in ports.items():
                text = text.replace(f"@{name}@", str(port))
            path.write_text(text)


def write_proc(proc: Path, tls_port: int, tls6_port: int, plain_port: int) -> None:
    """Kernel-format rows: three listeners, an established connection, a TIME_WAIT socket."""
    v4_loopback, v4_any = "0100007F", "00000000"
    v6_loopback, v6_any = "0" * 24 + "01000000", "0" * 32
    tcp = [
        proc_row(0, f"{v4_loopback}:{hex_port(tls_port)}", f"{v4_any}:0000", 0x0A),
        proc_row(1, f"{v4_any}:{hex_port(plain_port)}", f"{v4_any}:0000", 0x0A),
        proc_row(2, f"{v4_loopback}:{hex_port(tls_port)}", f"{v4_loopback}:D431", 0x01),
        proc_row(3, f"{v4_loopback}:1F90", f"{v4_loopback}:C350", 0x06),
    ]
    tcp6 = [
        proc_row(0, f"{v6_any}:{hex_port(tls6_port)}", f"{v6_any}:0000", 0x0A),
        proc_row(1, f"{v6_loopback}:{hex_port(tls6_port)}", f"{v6_loopback}:E0F2", 0x01),
    ]
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text("\n".join([PROC_HEADER, *tcp]) + "\n")
    (proc / "net" / "tcp6").write_text("\n".join([PROC_HEADER, *tcp6]) + "\n")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("discovery")
    certs = issue(TestPKI(NOW))
    served = base / "served"  # the listeners' own copies, outside the host root
    for name in ("shop", "api-old", "secure"):
        certs[name].write(served / f"{name}.pem", served / f"{name}.key")
    (served / "shop.pem").write_bytes(certs["shop"].pem + certs["ca"].pem)
    shop, api_old, secure = (
        server_context(served / f"{name}.pem", served / f"{name}.key")
        for name in ("shop", "api-old", "secure")
    )
    with ExitStack() as stack:
        tls = stack.enter_context(
            LoopbackServer("127.0.0.1", tls_handler(shop, {"api.example.test": api_old}))
        )
        try:
            tls6 = stack.enter_context(LoopbackServer("::1", tls_handler(secure, {})))
        except OSError:
            pytest.skip("no IPv6 loopback")
        plain = stack.enter_context(LoopbackServer("127.0.0.1", plain_handler))
        ports = {"TLS_PORT": tls.port, "TLS6_PORT": tls6.port, "PLAIN_PORT": plain.port}
        copy_tree(base / "root", ports)
        write_host_files(base / "root", certs)
        write_proc(base / "proc", tls.port, tls6.port, plain.port)
        yield Host(base / "root", base / "proc", certs, tls.port, tls6.port, plain.port)


# --- the expected inventory --------------------------------------------------------------------


def even_hex(n: int) -> str:
    digits = f"{n:x}"
    return digits.zfill(len(digits) + len(digits) % 2)


def described(
    issued: Issued,
    subject: str,
    key_type: str,
    *,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    issuer: str = CA,
    self_signed: bool = False,
    is_ca: bool = False,
    days: int = 90,
    start_days: int = -1,
) -> CertificateInfo:
    return CertificateInfo(
        fingerprint=issued.fingerprint,
        subject=subject,
        issuer=issuer,
        dns_names=dns,
        ip_addresses=ips,
        not_before=NOW + timedelta(days=start_days),
        not_after=NOW + timedelta(days=days),
        key_type=key_type,
        serial=even_hex(issued.cert.serial_number),
        self_signed=self_signed,
        is_ca=is_ca,
    )


def expected_infos(certs: dict[str, Issued]) -> dict[str, CertificateInfo]:
    shop_names = ("shop.example.test", "www.shop.example.test")
    secure_names = ("secure.example.test", "www.secure.example.test")
    return {
        "ca": described(
            certs["ca"], CA, "ec-p256", issuer=CA, self_signed=True, is_ca=True, days=365
        ),
        "shop": described(certs["shop"], "CN=shop.example.test", "ec-p256", dns=shop_names),
        "api": described(
            certs["api"],
            "CN=api.example.test",
            "ec-p384",
            dns=("api.example.test",),
            ips=("127.0.0.1",),
        ),
        "api-old": described(
            certs["api-old"], "CN=api.example.test", "rsa-2048", dns=("api.example.test",), days=20
        ),
        "secure": described(
            certs["secure"], "CN=secure.example.test", "ec-p256", dns=secure_names, days=10
        ),
        "snakeoil": described(
            certs["snakeoil"],
            "CN=intranet",
            "ed25519",
            issuer="CN=intranet",
            self_signed=True,
            days=3650,
        ),
        "expired": described(
            certs["expired"],
            "CN=old.example.test",
            "ec-p256",
            dns=("old.example.test",),
            start_days=-100,
            days=-10,
        ),
        "legacy": described(certs["legacy"], "CN=legacy.example.test", "rsa-1024"),
    }


def expected_configs(h: Host) -> tuple[ServerConfig, ServerConfig]:
    def ref(directive, role, value, file, line, path=None, unresolved=None):
        return CertReference(directive, role, value, path or value, file, line, unresolved)

    def variable(directive, role, value, file, line):
        return CertReference(directive, role, value, None, file, line, "contains a variable")

    nginx = ServerConfig(
        software="nginx",
        main_file=NGINX,
        files=(NGINX, API_CONF, SHOP_CONF, BROKEN_CONF, SITES),
        servers=(
            VirtualServer(
                "nginx",
                API_CONF,
                1,
                ("api.example.test",),
                (ListenAddress("127.0.0.1", h.tls_port, True, False, API_CONF, 2),),
                True,
                (
                    ref(
                        "ssl_certificate", "certificate", "/etc/ssl/certplane/api.pem", API_CONF, 5
                    ),
                    ref("ssl_certificate_key", "key", "/etc/ssl/private/api.key", API_CONF, 6),
                ),
            ),
            VirtualServer(
                "nginx",
                SHOP_CONF,
                2,
                ("shop.example.test", "www.shop.example.test"),
                (
                    ListenAddress("127.0.0.1", h.tls_port, True, True, SHOP_CONF, 3),
                    ListenAddress("::1", h.tls_port, True, False, SHOP_CONF, 4),
                ),
                True,
                (
                    ref(
                        "ssl_certificate",
                        "certificate",
                        "certs/shop.pem",
                        SHOP_CONF,
                        6,
                        "/etc/nginx/certs/shop.pem",
                    ),
                    ref("ssl_certificate_key", "key", "/etc/ssl/private/shop.key", SHOP_CONF, 7),
                ),
            ),
            VirtualServer(
                "nginx",
                SITES,
                1,
                ("_",),
                (
                    ListenAddress("*", 80, False, True, SITES, 2),
                    ListenAddress("::", 80, False, True, SITES, 3),
                ),
                False,
                (),
            ),
            VirtualServer(
                "nginx",
                SITES,
                8,
                (r"~^(?<tenant>[a-z]+)\.tenants\.example\.test$",),
                (ListenAddress("*", 8443, True, False, SITES, 9),),
                True,
                (
                    variable(
                        "ssl_certificate",
                        "certificate",
                        "/etc/ssl/tenants/$ssl_server_name.pem",
                        SITES,
                        11,
                    ),
                    variable(
                        "ssl_certificate_key",
                        "key",
                        "/etc/ssl/tenants/$ssl_server_name.key",
                        SITES,
                        12,
                    ),
                ),
            ),
        ),
        listen=(),
        errors=(ParseError("nginx", BROKEN_CONF, 4, 'unexpected end of file, expecting "'),),
    )
    apache = ServerConfig(
        software="apache",
        main_file=APACHE,
        files=(APACHE, PORTS, HTTP_SITE, SSL_SITE),
        servers=(
            VirtualServer(
                "apache",
                HTTP_SITE,
                1,
                ("www.example.test",),
                (ListenAddress("*", h.plain_port, False, False, HTTP_SITE, 1),),
                False,
                (),
            ),
            VirtualServer(
                "apache",
                SSL_SITE,
                2,
                ("secure.example.test", "www.secure.example.test", "*.secure.example.test"),
                (ListenAddress("_default_", h.tls6_port, True, False, SSL_SITE, 2),),
                True,
                (
                    ref(
                        "SSLCertificateFile",
                        "certificate",
                        "/etc/ssl/certs/secure.pem",
                        SSL_SITE,
                        7,
                    ),
                    ref("SSLCertificateKeyFile", "key", "/etc/ssl/private/secure.key", SSL_SITE, 8),
                    ref(
                        "SSLCertificateChainFile",
                        "chain",
                        "/etc/ssl/certs/certplane-ca.pem",
                        SSL_SITE,
                        9,
                    ),
                ),
            ),
            VirtualServer(
                "apache",
                SSL_SITE,
                12,
                ("intranet.example.test",),
                (ListenAddress("*", 443, True, False, SSL_SITE, 12),),
                True,
                (  # inherited from the server level
                    ref(
                        "SSLCertificateFile",
                        "certificate",
                        "/etc/ssl/certs/ssl-cert-snakeoil.pem",
                        APACHE,
                        7,
                    ),
                    ref(
                        "SSLCertificateKeyFile",
                        "key",
                        "/etc/ssl/private/ssl-cert-snakeoil.key",
                        APACHE,
                        8,
                    ),
                ),
            ),
            VirtualServer(
                "apache",
                SSL_SITE,
                17,
                ("legacy.example.test",),
                (ListenAddress("192.0.2.10", 443, True, False, SSL_SITE, 17),),
                True,
                (
                    ref(
                        "SSLCertificateFile",
                        "certificate",
                        "/etc/ssl/certplane/garbage.pem",
                        SSL_SITE,
                        20,
                    ),
                    ref(
                        "SSLCertificateKeyFile", "key", "/etc/ssl/private/legacy.key", SSL_SITE, 21
                    ),
                    ref(
                        "SSLCertificateChainFile",
                        "chain",
                        "/etc/ssl/certplane/missing-chain.pem",
                        SSL_SITE,
                        22,
                    ),
                ),
            ),
        ),
        listen=(
            ListenAddress("*", h.plain_port, False, False, PORTS, 1),
            ListenAddress("*", h.tls6_port, True, False, PORTS, 4),
            ListenAddress("*", 443, True, False, PORTS, 5),
        ),
        errors=(),
    )
    return nginx, apache


def expected_records(h: Host, nginx: ServerConfig, apache: ServerConfig) -> list[CertificateRecord]:
    info = expected_infos(h.certs)
    api, shop = nginx.servers[0], nginx.servers[1]
    secure, intranet = apache.servers[1], apache.servers[2]

    def at(server: VirtualServer, ref: int, role: str, path: str, index: int, served: bool | None):
        reference = server.references[ref]
        return ConfiguredAt(
            server.software,
            reference.file,
            reference.line,
            reference.directive,
            role,  # type: ignore[arg-type]
            path,
            index,
            server.server_names,
            server.listen,
            served,
        )

    p1, p2 = h.tls_port, h.tls6_port
    records = [
        CertificateRecord(
            info["ca"],
            (
                FileLocation("/etc/nginx/certs/shop.pem", 1),
                FileLocation("/etc/ssl/certs/certplane-ca.pem", 0),
            ),
            (
                at(secure, 2, "chain", "/etc/ssl/certs/certplane-ca.pem", 0, None),
                at(shop, 0, "chain", "/etc/nginx/certs/shop.pem", 1, None),
            ),
            (),
        ),
        CertificateRecord(
            info["shop"],
            (FileLocation("/etc/nginx/certs/shop.pem", 0),),
            (at(shop, 0, "leaf", "/etc/nginx/certs/shop.pem", 0, True),),
            (
                ServedAt("127.0.0.1", p1, None),
                ServedAt("127.0.0.1", p1, "shop.example.test"),
                ServedAt("127.0.0.1", p1, "www.shop.example.test"),
            ),
        ),
        CertificateRecord(
            info["api"],
            (
                FileLocation("/etc/ssl/certplane/api.pem", 0),
                FileLocation("/etc/ssl/certplane/current.pem", 0),
            ),
            (at(api, 0, "leaf", "/etc/ssl/certplane/api.pem", 0, False),),
            (),
        ),
        CertificateRecord(
            info["api-old"], (), (), (ServedAt("127.0.0.1", p1, "api.example.test"),)
        ),
        CertificateRecord(
            info["secure"],
            (FileLocation("/etc/ssl/certs/secure.pem", 0),),
            (at(secure, 0, "leaf", "/etc/ssl/certs/secure.pem", 0, True),),
            (
                ServedAt("::1", p2, None),
                ServedAt("::1", p2, "secure.example.test"),
                ServedAt("::1", p2, "www.secure.example.test"),
            ),
        ),
        CertificateRecord(
            info["snakeoil"],
            (FileLocation("/etc/ssl/certs/ssl-cert-snakeoil.pem", 0),),
            (at(intranet, 0, "leaf", "/etc/ssl/certs/ssl-cert-snakeoil.pem", 0, None),),
            (),
        ),
        CertificateRecord(
            info["expired"], (FileLocation("/etc/ssl/certplane/expired.pem", 0),), (), ()
        ),
        CertificateRecord(
            info["legacy"], (FileLocation("/etc/ssl/certplane/legacy.der", 0),), (), ()
        ),
    ]
    return sorted(records, key=lambda record: record.certificate.fingerprint)


def expected_findings(h: Host) -> tuple[Finding, ...]:
    fp = {name: issued.fingerprint for name, issued in h.certs.items()}
    soon = (NOW + timedelta(days=10)).isoformat().replace("+00:00", "Z")
    gone = (NOW - timedelta(days=10)).isoformat().replace("+00:00", "Z")
    old_served = (NOW + timedelta(days=20)).isoformat().replace("+00:00", "Z")
    served_instead = f"127.0.0.1:{h.tls_port} sni api.example.test serves {fp['api-old']}"
    variable = "contains a variable"
    return (
        Finding(
            "configured-but-not-served",
            fp["api"],
            "/etc/ssl/certplane/api.pem",
            API_CONF,
            5,
            served_instead,
        ),
        Finding("expired", fp["expired"], None, None, None, f"notAfter {gone}"),
        *sorted(
            [
                Finding("expires-soon", fp["secure"], None, None, None, f"notAfter {soon}"),
                # the certificate still served, not yet replaced by the reload, expires soon too
                Finding("expires-soon", fp["api-old"], None, None, None, f"notAfter {old_served}"),
            ],
            key=lambda finding: finding.fingerprint or "",
        ),
        Finding(
            "missing-file",
            None,
            "/etc/ssl/certplane/missing-chain.pem",
            SSL_SITE,
            22,
            "SSLCertificateChainFile",
        ),
        Finding(
            "missing-file",
            None,
            "/etc/ssl/private/legacy.key",
            SSL_SITE,
            21,
            "SSLCertificateKeyFile",
        ),
        Finding("self-signed", fp["snakeoil"], None, None, None, ""),
        Finding(
            "unreadable",
            None,
            "/etc/ssl/certplane/garbage.pem",
            SSL_SITE,
            20,
            "SSLCertificateFile: bad-certificate",
        ),
        Finding(
            "unresolvable-path",
            None,
            None,
            SITES,
            11,
            f"ssl_certificate /etc/ssl/tenants/$ssl_server_name.pem: {variable}",
        ),
        Finding(
            "unresolvable-path",
            None,
            None,
            SITES,
            12,
            f"ssl_certificate_key /etc/ssl/tenants/$ssl_server_name.key: {variable}",
        ),
        Finding("weak-key", fp["legacy"], None, None, None, "rsa-1024: below 2048 bits"),
    )


def expected_probes(h: Host) -> tuple[ProbeResult, ...]:
    fp = {name: issued.fingerprint for name, issued in h.certs.items()}
    p1, p2 = h.tls_port, h.tls6_port
    probes = [
        ProbeResult("127.0.0.1", h.plain_port, None, "not-tls", None),
        ProbeResult("127.0.0.1", p1, None, "tls", fp["shop"]),
        ProbeResult("127.0.0.1", p1, "api.example.test", "tls", fp["api-old"]),
        ProbeResult("127.0.0.1", p1, "shop.example.test", "tls", fp["shop"]),
        ProbeResult("127.0.0.1", p1, "www.shop.example.test", "tls", fp["shop"]),
        ProbeResult("::1", p2, None, "tls", fp["secure"]),
        ProbeResult("::1", p2, "secure.example.test", "tls", fp["secure"]),
        ProbeResult("::1", p2, "www.secure.example.test", "tls", fp["secure"]),
    ]

    def order(result: ProbeResult) -> tuple[int, int, int, str]:
        address = ipaddress.ip_address(result.host)
        return (address.version, int(address), result.port, result.sni or "")

    return tuple(sorted(probes, key=order))


def expected_report(h: Host) -> DiscoveryReport:
    nginx, apache = expected_configs(h)
    return DiscoveryReport(
        generated_at=NOW,
        certificates=tuple(expected_records(h, nginx, apache)),
        findings=expected_findings(h),
        configs=(nginx, apache),
        sockets=(
            ListeningSocket("ipv4", "0.0.0.0", h.plain_port),
            ListeningSocket("ipv4", "127.0.0.1", h.tls_port),
            ListeningSocket("ipv6", "::", h.tls6_port),
        ),
        probes=expected_probes(h),
        skipped=(
            SkippedFile("/etc/letsencrypt", "missing"),
            SkippedFile(
                "/etc/ssl/certplane/big.pem",
                "too-large",
                None,
                f"{MAX_FILE_SIZE + 1} bytes, limit {MAX_FILE_SIZE}",
            ),
            SkippedFile("/etc/ssl/certplane/garbage.pem", "bad-certificate", 0, "invalid base64"),
            SkippedFile("/etc/ssl/certplane/missing-chain.pem", "missing"),
            SkippedFile(
                "/etc/ssl/certplane/notes.txt", "not-a-certificate", None, "neither PEM nor DER"
            ),
            SkippedFile("/etc/ssl/certplane/outside.pem", "symlink-outside-roots"),
        ),
        errors=(),
    )


# --- tests -------------------------------------------------------------------------------------


def test_the_report_is_exactly_the_expected_inventory(host):
    assert discover(host.options(), now=NOW) == expected_report(host)


def test_the_json_is_deterministic_and_complete(host):
    first = discover(host.options(), now=NOW).to_json()
    assert discover(host.options(), now=NOW).to_json() == first
    assert json.loads(first) == expected_report(host).to_dict()
    assert json.loads(first)["generated_at"] == NOW.isoformat().replace("+00:00", "Z")


def test_without_probes_nothing_is_judged_served(host):
    report = discover(host.options(), probe=None, now=NOW)
    assert report.probes == ()
    assert {c.served for record in report.certificates for c in record.configured} == {None}
    assert "configured-but-not-served" not in {f.code for f in report.findings}
    assert host.certs["api-old"].fingerprint not in {
        r.certificate.fingerprint for r in report.certificates
    }


def test_reloading_the_server_clears_the_finding(host):
    """A probe that sees what the file holds (as after a reload) makes the leaf served."""
    from certplane.agent.discovery import ProbeOutcome, ProbeTarget, tls_probe

    def reloaded(target: ProbeTarget, timeout: float) -> ProbeOutcome:
        if target.sni == "api.example.test":
            return ProbeOutcome("tls", host.certs["api"].der)
        return tls_probe(target, timeout)

    report = discover(host.options(), probe=reloaded, now=NOW)
    api = next(
        r for r in report.certificates if r.certificate.fingerprint == host.certs["api"].fingerprint
    )
    assert [c.served for c in api.configured] == [True]
    assert api.served == (ServedAt("127.0.0.1", host.tls_port, "api.example.test"),)
    assert "configured-but-not-served" not in {f.code for f in report.findings}


def test_servers_that_are_not_installed_are_absent(host):
    report = discover(
        host.options(nginx_main=None, apache_main="/etc/httpd/conf/httpd.conf"), probe=None, now=NOW
    )
    assert report.configs == ()
