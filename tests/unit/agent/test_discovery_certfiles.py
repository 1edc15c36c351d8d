"""Certificate files: what is recorded per certificate, PEM bundles, DER, and scans that skip
what they cannot use without ever failing."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448
from unit.agent.fixtures.discovery.pki import TestPKI, ec_key, ed25519_key, rsa_key

from certplane.agent.discovery import (
    CertificateFileScan,
    CertificateInfo,
    FoundCertificate,
    HostRoot,
    SkippedFile,
    describe_certificate,
    key_type,
    parse_certificate_bytes,
    read_certificate_file,
    scan_certificate_files,
    weak_key_reason,
)
from certplane.agent.discovery.certfiles import serial_hex

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI(NOW)


def even_hex(n: int) -> str:
    digits = f"{n:x}"
    return digits.zfill(len(digits) + len(digits) % 2)


def test_a_leaf_is_described_completely(pki):
    leaf = pki.leaf(
        "www.example.test",
        dns=["www.example.test", "example.test"],
        ips=["192.0.2.7", "2001:db8::7"],
    )
    assert describe_certificate(leaf.cert) == CertificateInfo(
        fingerprint=leaf.cert.fingerprint(hashes.SHA256()).hex(),
        subject="CN=www.example.test",
        issuer="CN=Certplane Discovery Test CA",
        dns_names=("www.example.test", "example.test"),
        ip_addresses=("192.0.2.7", "2001:db8::7"),
        not_before=datetime(2030, 1, 14, 12, 0, 0, tzinfo=UTC),
        not_after=datetime(2030, 4, 15, 12, 0, 0, tzinfo=UTC),
        key_type="ec-p256",
        serial=even_hex(leaf.cert.serial_number),
        self_signed=False,
        is_ca=False,
    )


def test_self_signed_needs_the_name_and_the_signature(pki):
    ca = describe_certificate(pki.ca.cert)
    assert (ca.self_signed, ca.is_ca, ca.dns_names) == (True, True, ())
    snakeoil = describe_certificate(pki.leaf("host", key=ed25519_key(), self_signed=True).cert)
    assert (snakeoil.self_signed, snakeoil.is_ca, snakeoil.key_type) == (True, False, "ed25519")
    # named like the CA, issued by another CA's key: the names match, the signature does not
    forged = TestPKI(NOW).leaf("Certplane Discovery Test CA")
    assert forged.cert.subject == forged.cert.issuer
    assert describe_certificate(forged.cert).self_signed is False


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: rsa_key(2048), "rsa-2048"),
        (lambda: rsa_key(1024), "rsa-1024"),
        (lambda: ec_key(), "ec-p256"),
        (lambda: ec_key(ec.SECP384R1()), "ec-p384"),
        (lambda: ec_key(ec.SECP521R1()), "ec-p521"),
        (lambda: ec_key(ec.SECP256K1()), "ec-secp256k1"),
        (ed25519_key, "ed25519"),
        (ed448.Ed448PrivateKey.generate, "ed448"),
        (lambda: dsa.generate_private_key(1024), "dsa-1024"),
    ],
)
def test_key_types(make, name):
    assert key_type(make().public_key()) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rsa-1024", "rsa-1024: below 2048 bits"),
        ("rsa-2047", "rsa-2047: below 2048 bits"),
        ("rsa-2048", None),
        ("dsa-1024", "dsa-1024: below 2048 bits"),
        ("ec-p192", "ec-p192: below 256 bits"),
        ("ec-p224", "ec-p224: below 256 bits"),
        ("ec-p256", None),
        ("ec-p521", None),
        ("ec-secp256k1", None),
        ("ed25519", None),
        ("unknown", None),
    ],
)
def test_weak_keys(name, reason):
    assert weak_key_reason(name) == reason


@pytest.mark.parametrize(
    ("serial", "text"), [(1, "01"), (0xABC, "0abc"), (0xABCD, "abcd"), (-5, "-05")]
)
def test_serials_are_even_length_hex(serial, text):
    assert serial_hex(serial) == text


# --- parsing file contents ---------------------------------------------------------------------


def test_a_pem_bundle_yields_each_certificate_with_its_index_and_ignores_keys(pki):
    leaf = pki.leaf("a.test", dns=["a.test"])
    data = b"subject=CN=a.test\n" + leaf.pem + leaf.key_pem + pki.ca.pem
    scan = parse_certificate_bytes("/b.pem", data)
    assert scan == CertificateFileScan(
        found=(
            FoundCertificate("/b.pem", 0, describe_certificate(leaf.cert)),
            FoundCertificate("/b.pem", 1, describe_certificate(pki.ca.cert)),
        )
    )


def test_der(pki):
    leaf = pki.leaf("a.test")
    assert parse_certificate_bytes("/a.der", leaf.der).found == (
        FoundCertificate("/a.der", 0, describe_certificate(leaf.cert)),
    )


def test_a_bad_block_is_skipped_and_the_others_kept(pki):
    leaf = pki.leaf("a.test")
    bad_der = b"-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n"
    bad_base64 = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    scan = parse_certificate_bytes("/m.pem", bad_der + leaf.pem + bad_base64)
    assert scan.found == (FoundCertificate("/m.pem", 1, describe_certificate(leaf.cert)),)
    assert scan.skipped == (
        SkippedFile("/m.pem", "bad-certificate", 0, "invalid DER"),
        SkippedFile("/m.pem", "bad-certificate", 2, "invalid base64"),
    )


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"", "not-a-certificate", "neither PEM nor DER"),
        (b"\x00\x01garbage", "not-a-certificate", "neither PEM nor DER"),
        (b"-----BEGIN CERTIFICATE-----\ntruncated", "no-certificate", "no CERTIFICATE block"),
    ],
)
def test_garbage(data, reason, detail):
    assert parse_certificate_bytes("/g", data) == CertificateFileScan(
        skipped=(SkippedFile("/g", reason, None, detail),)
    )


def test_a_key_only_file_has_no_certificate():
    key = ec_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert parse_certificate_bytes("/k", key).skipped == (
        SkippedFile("/k", "no-certificate", None, "no CERTIFICATE block"),
    )


# --- reading files -----------------------------------------------------------------------------


def test_read_refuses_what_it_should_not_read(tmp_path, pki):
    host = HostRoot(tmp_path)
    (tmp_path / "big.pem").write_bytes(pki.ca.pem + b"#" * 2000)
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    assert read_certificate_file(host, "/missing.pem").skipped == (
        SkippedFile("/missing.pem", "missing"),
    )
    assert read_certificate_file(host, "/big.pem", 1000).skipped[0].reason == "too-large"
    assert read_certificate_file(host, "/dir").skipped == (
        SkippedFile("/dir", "not-a-regular-file"),
    )
    assert read_certificate_file(host, "/fifo").skipped == (
        SkippedFile("/fifo", "not-a-regular-file"),
    )


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_permission_denied_is_unreadable(tmp_path, pki):
    (tmp_path / "secret.pem").write_bytes(pki.ca.pem)
    (tmp_path / "secret.pem").chmod(0)
    assert read_certificate_file(HostRoot(tmp_path), "/secret.pem").skipped == (
        SkippedFile("/secret.pem", "unreadable", None, "EACCES"),
    )


# --- scanning roots ----------------------------------------------------------------------------


def test_scan_walks_in_order_and_keeps_symlinks_inside_the_roots(tmp_path, pki):
    a, b = pki.leaf("a.test"), pki.leaf("b.test")
    certs = tmp_path / "etc" / "certs"
    (certs / "sub").mkdir(parents=True)
    (certs / "z.pem").write_bytes(a.pem)
    (certs / "sub" / "b.der").write_bytes(b.der)
    (certs / "current.pem").symlink_to("z.pem")
    (certs / "dangling.pem").symlink_to("nowhere.pem")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "stray.pem").write_bytes(b.pem)
    (certs / "escape.pem").symlink_to("../../outside/stray.pem")
    (certs / "absolute.pem").symlink_to(tmp_path / "outside" / "stray.pem")
    (certs / "linked-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (certs / "linked-sub").symlink_to("sub", target_is_directory=True)  # inside: not descended
    scan = scan_certificate_files(HostRoot(tmp_path), ["/etc/certs", "/etc/certs/sub", "/etc/none"])
    assert scan.found == (
        FoundCertificate("/etc/certs/current.pem", 0, describe_certificate(a.cert)),
        FoundCertificate("/etc/certs/z.pem", 0, describe_certificate(a.cert)),
        FoundCertificate("/etc/certs/sub/b.der", 0, describe_certificate(b.cert)),
    )
    assert scan.skipped == (
        SkippedFile("/etc/certs/absolute.pem", "symlink-outside-roots"),
        SkippedFile("/etc/certs/dangling.pem", "missing"),
        SkippedFile("/etc/certs/escape.pem", "symlink-outside-roots"),
        SkippedFile("/etc/certs/linked-dir", "symlink-outside-roots"),
        SkippedFile("/etc/none", "missing"),
    )


def test_a_single_file_can_be_a_root(tmp_path, pki):
    (tmp_path / "one.pem").write_bytes(pki.ca.pem)
    scan = scan_certificate_files(HostRoot(tmp_path), ["/one.pem"])
    assert [(f.path, f.index) for f in scan.found] == [("/one.pem", 0)]


def test_the_number_of_files_is_bounded(tmp_path, pki):
    for i in range(5):
        (tmp_path / f"{i}.pem").write_bytes(pki.ca.pem)
    scan = scan_certificate_files(HostRoot(tmp_path), ["/"], max_files=3)
    assert [f.path for f in scan.found] == ["/0.pem", "/1.pem", "/2.pem"]
    assert scan.skipped == (SkippedFile("/", "file-limit", None, "stopped after 3 files"),)


def test_the_file_size_is_bounded(tmp_path, pki):
    (tmp_path / "a.pem").write_bytes(pki.ca.pem)
    scan = scan_certificate_files(HostRoot(tmp_path), ["/"], max_file_size=100)
    assert scan.skipped == (
        SkippedFile("/a.pem", "too-large", None, f"{len(pki.ca.pem)} bytes, limit 100"),
    )
