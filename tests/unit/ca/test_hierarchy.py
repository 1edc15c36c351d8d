"""CA certificates: root, intermediate (with name constraints), and the platform TLS certificate."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certplane.ca.api import IssuanceRefused
from certplane.ca.hierarchy import (
    CA_BACKDATE,
    create_intermediate,
    create_root,
    create_tls_server_certificate,
)

Verify = Callable[..., Any]


def _ext(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module")
def root_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def root(root_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return create_root(root_key, "Test Root", "certplane", timedelta(days=3650))


@pytest.fixture(scope="module")
def int_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_root_is_a_self_signed_ca(root: x509.Certificate) -> None:
    root.verify_directly_issued_by(root)
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test Root"
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "certplane"
    basic = _ext(root, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 1
    usage = _ext(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _ext(root, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    assert 0 < root.serial_number < 1 << 159


def test_root_validity_is_exact_and_backdated(root_key: ec.EllipticCurvePrivateKey) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, 987654, tzinfo=UTC)
    cert = create_root(root_key, "R", "", timedelta(days=10), now=now, path_length=None)
    assert cert.not_valid_before_utc == (now - CA_BACKDATE).replace(microsecond=0)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=10, seconds=-1)
    assert _ext(cert, x509.BasicConstraints).value.path_length is None
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []


def test_rsa_root() -> None:
    key = rsa.generate_private_key(65537, 2048)
    cert = create_root(key, "RSA Root", "certplane", timedelta(days=30))
    cert.verify_directly_issued_by(cert)


def test_intermediate_profile(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    cert = create_intermediate(
        root,
        root_key,
        int_key.public_key(),
        "Int",
        "certplane",
        timedelta(days=365),
        crl_url="http://crl.test/root.crl",
    )
    cert.verify_directly_issued_by(root)
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(root, x509.SubjectKeyIdentifier).value.digest
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    (point,) = _ext(cert, x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier("http://crl.test/root.crl")]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.NameConstraints)


def test_intermediate_without_eku(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    cert = create_intermediate(
        root,
        root_key,
        int_key.public_key(),
        "Int",
        "certplane",
        timedelta(days=30),
        server_client_eku=False,
    )
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.ExtendedKeyUsage)


def test_intermediate_beyond_the_root_is_refused(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    with pytest.raises(IssuanceRefused, match="after the issuer's notAfter"):
        create_intermediate(
            root, root_key, int_key.public_key(), "Int", "certplane", timedelta(days=3651)
        )


def test_intermediate_needs_the_issuers_key(
    root: x509.Certificate, int_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ValueError, match="does not match"):
        create_intermediate(
            root, int_key, int_key.public_key(), "Int", "certplane", timedelta(days=30)
        )


def test_an_intermediate_cannot_certify_another_ca(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    intermediate = create_intermediate(
        root, root_key, int_key.public_key(), "Int", "certplane", timedelta(days=30)
    )
    with pytest.raises(ValueError, match="may not certify another CA"):
        create_intermediate(
            intermediate, int_key, root_key.public_key(), "Sub", "certplane", timedelta(days=10)
        )


def test_name_constraints_are_critical_and_exclude_ips_by_default(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    cert = create_intermediate(
        root,
        root_key,
        int_key.public_key(),
        "Int",
        "certplane",
        timedelta(days=30),
        permitted_dns_names=["example.com"],
    )
    constraints = _ext(cert, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName("example.com")]
    assert constraints.value.excluded_subtrees == [
        x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
        x509.IPAddress(ipaddress.ip_network("::/0")),
    ]


@pytest.mark.parametrize(
    ("dns_names", "ips", "accepted"),
    [
        (["www.example.com"], [], True),
        (["example.com"], [], True),
        (["www.example.org"], [], False),
        (["www.example.com", "evil.test"], [], False),
        (["www.example.com"], ["192.0.2.1"], False),
        (["www.example.com"], ["10.1.2.3"], True),
    ],
)
def test_openssl_enforces_name_constraints(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
    openssl_verify: Verify,
    dns_names: list[str],
    ips: list[str],
    accepted: bool,
) -> None:
    intermediate = create_intermediate(
        root,
        root_key,
        int_key.public_key(),
        "Constrained",
        "certplane",
        timedelta(days=30),
        permitted_dns_names=["example.com"],
        permitted_ip_networks=[ipaddress.ip_network("10.0.0.0/8")],
    )
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    leaf_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    # The relying party enforces the constraints on any leaf, even one signed around our CA...
    leaf = _leaf_signed_around_the_ca(intermediate, int_key, leaf_key, dns_names, addresses)
    result = openssl_verify(root, [intermediate], leaf)
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr
    # ...and our CA refuses to sign what the relying party would reject.
    sign = functools.partial(
        create_tls_server_certificate, intermediate, int_key, leaf_key, dns_names, addresses
    )
    if accepted:
        sign(timedelta(days=7))
    else:
        with pytest.raises(IssuanceRefused, match="name constraints"):
            sign(timedelta(days=7))


def _leaf_signed_around_the_ca(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    dns_names: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> x509.Certificate:
    now = datetime.now(UTC)
    names = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(a) for a in addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def test_tls_server_certificate(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
    openssl_verify: Verify,
) -> None:
    intermediate = create_intermediate(
        root, root_key, int_key.public_key(), "Int", "certplane", timedelta(days=365)
    )
    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    cert = create_tls_server_certificate(
        intermediate,
        int_key,
        rsa.generate_private_key(65537, 2048).public_key(),
        ["localhost"],
        loopback,
        timedelta(days=30),
    )
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == loopback
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert _ext(cert, x509.KeyUsage).value.key_encipherment
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30, seconds=-1)
    result = openssl_verify(
        root, [intermediate], cert, "-purpose", "sslserver", "-verify_hostname", "localhost"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = openssl_verify(root, [intermediate], cert, "-verify_ip", "::1")
    assert result.returncode == 0, result.stdout + result.stderr
    result = openssl_verify(root, [intermediate], cert, "-verify_hostname", "example.com")
    assert result.returncode != 0


def test_tls_server_certificate_needs_a_name(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
) -> None:
    intermediate = create_intermediate(
        root, root_key, int_key.public_key(), "Int", "certplane", timedelta(days=365)
    )
    with pytest.raises(IssuanceRefused, match="at least one"):
        create_tls_server_certificate(intermediate, int_key, int_key.public_key(), [])


def test_dns_only_constraints_forbid_every_ip_address(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    int_key: ec.EllipticCurvePrivateKey,
    openssl_verify: Verify,
) -> None:
    intermediate = create_intermediate(
        root,
        root_key,
        int_key.public_key(),
        "Constrained",
        "certplane",
        timedelta(days=30),
        permitted_dns_names=["example.com"],
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    for ips, accepted in (([], True), ([ipaddress.ip_address("2001:db8::1")], False)):
        leaf = _leaf_signed_around_the_ca(intermediate, int_key, leaf_key, ["a.example.com"], ips)
        result = openssl_verify(root, [intermediate], leaf)
        assert (result.returncode == 0) is accepted, result.stdout + result.stderr
