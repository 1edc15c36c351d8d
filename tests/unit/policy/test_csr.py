"""check_csr: finalize-time CSR rules (RFC 8555 §7.4), each accepted and refused."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from certplane.policy.csr import CSRInfo, CSRRejected, CSRRejectionKind, check_csr
from certplane.policy.identifiers import Identifier, IdentifierType

BAD_CSR, BAD_PUBLIC_KEY = CSRRejectionKind.BAD_CSR, CSRRejectionKind.BAD_PUBLIC_KEY
ORDER = (
    Identifier(IdentifierType.DNS, "example.com"),
    Identifier(IdentifierType.DNS, "*.example.com"),
    Identifier(IdentifierType.IP, "2001:db8::1"),
)
SANS: list[x509.GeneralName] = [
    x509.DNSName("example.com"),
    x509.DNSName("*.example.com"),
    x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
]


@cache
def cert_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def account_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@cache
def rsa_cert_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def make_csr(
    sans: Sequence[x509.GeneralName] | None = SANS,
    *,
    cn: Sequence[str] = (),
    key=None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    key = key or cert_key()
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ignored Ltd")]
    subject += [x509.NameAttribute(NameOID.COMMON_NAME, value) for value in cn]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if algorithm is None and not isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def check(csr_der: bytes, identifiers: Sequence[Identifier] = ORDER) -> CSRInfo:
    return check_csr(csr_der, identifiers, account_key().public_key())


def refused(csr_der: bytes, identifiers: Sequence[Identifier] = ORDER) -> CSRRejected:
    with pytest.raises(CSRRejected) as excinfo:
        check(csr_der, identifiers)
    return excinfo.value


def test_matching_csr_is_accepted():
    info = check(make_csr())
    assert info.dns_names == ("example.com", "*.example.com")
    assert info.ip_addresses == (ipaddress.ip_address("2001:db8::1"),)
    assert info.common_name is None
    assert isinstance(info.public_key, ec.EllipticCurvePublicKey)


def test_names_are_compared_lowercased():
    sans = [x509.DNSName("EXAMPLE.com"), x509.DNSName("*.Example.COM"), SANS[2]]
    info = check(make_csr(sans, cn=["Example.Com"]))
    assert info.dns_names == ("example.com", "*.example.com")
    assert info.common_name == "example.com"


def test_rsa_csr_is_accepted():
    assert isinstance(check(make_csr(key=rsa_cert_key())).public_key, rsa.RSAPublicKey)


@pytest.mark.parametrize("cn", ["example.com", "*.example.com", "2001:db8::1", "2001:DB8:0::1"])
def test_common_name_among_sans(cn: str):
    assert check(make_csr(cn=[cn])).common_name == cn.lower()


@pytest.mark.parametrize(
    ("csr", "detail"),
    [
        (lambda: make_csr(cn=["other.example.com"]), "common name is not among"),
        (lambda: make_csr(cn=["192.0.2.1"]), "common name is not among"),
        (lambda: make_csr(cn=["example.com", "example.com"]), "more than one common name"),
        (lambda: make_csr(None, cn=["example.com"]), "no subjectAltName"),
        (lambda: make_csr(None), "no subjectAltName"),
    ],
)
def test_common_name_rules(csr, detail: str):
    rejection = refused(csr())
    assert rejection.kind is BAD_CSR
    assert detail in rejection.detail


def test_pem_is_refused():
    pem = x509.load_der_x509_csr(make_csr()).public_bytes(serialization.Encoding.PEM)
    assert refused(pem).detail == "CSR is not a valid DER-encoded PKCS#10 request"


@pytest.mark.parametrize("data", [b"", b"\x30\x00", b"garbage", make_csr.__name__.encode()])
def test_garbage_is_refused(data: bytes):
    assert refused(data).kind is BAD_CSR


def test_bad_signature_is_refused():
    der = bytearray(make_csr(key=rsa_cert_key()))
    der[-1] ^= 0x01
    assert refused(bytes(der)).detail == "CSR signature is invalid"


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def test_sha1_signature_is_refused():
    """cryptography will not sign with SHA-1, so assemble the CSR by hand (RFC 2986 §4.2)."""
    key = rsa_cert_key()
    tbs = x509.load_der_x509_csr(make_csr(key=key)).tbs_certrequest_bytes
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    sha1_with_rsa = _der(0x30, bytes.fromhex("06092a864886f70d0101050500"))
    der = _der(0x30, tbs + sha1_with_rsa + _der(0x03, b"\x00" + signature))
    assert isinstance(x509.load_der_x509_csr(der).signature_hash_algorithm, hashes.SHA1)
    assert "signature algorithm is not supported" in refused(der).detail


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "has 1024 bits"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "curve P-521 is not allowed"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "curve secp256k1 is not allowed"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "Ed25519 certificate keys"),
    ],
)
def test_weak_keys_are_bad_public_key(key, detail: str):
    rejection = refused(make_csr(key=key()))
    assert rejection.kind is BAD_PUBLIC_KEY
    assert detail in rejection.detail


def test_account_key_cannot_be_certificate_key():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CSRRejected) as excinfo:
        check_csr(make_csr(key=key), ORDER, key.public_key())
    assert excinfo.value.kind is BAD_CSR
    assert excinfo.value.detail == "certificate public key must be different than account key"


@pytest.mark.parametrize(
    "name",
    [
        x509.RFC822Name("admin@example.com"),
        x509.UniformResourceIdentifier("https://example.com/"),
        x509.RegisteredID(ObjectIdentifier("1.2.3.4")),
        x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])),
        x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
    ],
)
def test_other_san_types_are_refused(name: x509.GeneralName):
    rejection = refused(make_csr([*SANS, name]))
    assert rejection.kind is BAD_CSR
    assert f"has a {type(name).__name__} entry" in rejection.detail


@pytest.mark.parametrize(
    ("sans", "detail"),
    [
        (SANS[:2], "missing ip:2001:db8::1"),
        ([SANS[0], SANS[2]], "missing dns:*.example.com"),
        ([*SANS, x509.DNSName("www.example.com")], "not in the order dns:www.example.com"),
        ([*SANS, x509.IPAddress(ipaddress.ip_address("192.0.2.1"))], "not in the order ip:192"),
        (
            [x509.DNSName("example.com."), *SANS[1:]],
            "missing dns:example.com; not in the order dns:example.com.",
        ),
    ],
)
def test_sans_must_equal_the_order(sans: list[x509.GeneralName], detail: str):
    rejection = refused(make_csr(sans))
    assert rejection.kind is BAD_CSR
    assert rejection.detail.startswith("CSR names do not match the order's identifiers: ")
    assert detail in rejection.detail


@pytest.mark.parametrize(
    "sans",
    [
        [*SANS, x509.DNSName("example.com")],
        [*SANS, x509.DNSName("Example.com")],
        [*SANS, x509.IPAddress(ipaddress.ip_address("2001:db8::1"))],
    ],
)
def test_duplicate_sans_are_refused(sans: list[x509.GeneralName]):
    assert "more than once" in refused(make_csr(sans)).detail


_KU = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
_UNKNOWN = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")


@pytest.mark.parametrize(
    ("extension", "critical"),
    [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_KU, True),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectKeyIdentifier(b"\x01" * 20), False),
        (_UNKNOWN, False),
    ],
)
def test_ignorable_extensions_are_accepted(extension: x509.ExtensionType, critical: bool):
    check(make_csr(extensions=[(extension, critical)]))


@pytest.mark.parametrize(
    ("extension", "critical", "detail"),
    [
        (x509.BasicConstraints(ca=True, path_length=None), True, "CA certificate"),
        (x509.BasicConstraints(ca=True, path_length=0), False, "CA certificate"),
        (x509.TLSFeature([x509.TLSFeatureType.status_request]), False, "Must-Staple"),
        (_UNKNOWN, True, "unsupported critical extension 1.3.6.1.4.1.99999.1"),
    ],
)
def test_refused_extensions(extension: x509.ExtensionType, critical: bool, detail: str):
    rejection = refused(make_csr(extensions=[(extension, critical)]))
    assert rejection.kind is BAD_CSR
    assert detail in rejection.detail


def test_ipv4_order():
    order = [Identifier(IdentifierType.IP, "192.0.2.1")]
    info = check(make_csr([x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]), order)
    assert info.ip_addresses == (ipaddress.ip_address("192.0.2.1"),)
    assert info.dns_names == ()
