"""The ARI certificate identifier (RFC 9773 §4.1): base64url(AKI keyIdentifier) "."
base64url(serial DER content octets), unpadded; everything else is refused with a reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.server.ra.ari import CertId, cert_id_of, parse_cert_id

# RFC 9773 §4.1's example: keyIdentifier 69:88:5B:…:C8:D4, serial 0x87654321.
RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_CERT_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
LONG = b"\x01" * 21
LONG_WITH_SIGN = b"\x00" + b"\xff" * 21


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_rfc_example():
    assert parse_cert_id(RFC_CERT_ID) == CertId(RFC_AKI, 0x87654321)


@pytest.mark.parametrize(
    ("serial_octets", "serial"),
    [
        (b"\x01", 1),
        (b"\x7f", 0x7F),
        (b"\x00\x80", 0x80),  # the sign octet a high bit needs
        (b"\x00" + b"\xff" * 20, 2**160 - 1),  # 20 octets, the RFC 5280 maximum
        (b"\x7f" + b"\xff" * 19, 2**159 - 1),
    ],
)
def test_serials_are_der_integer_contents(serial_octets, serial):
    assert parse_cert_id(f"{b64(RFC_AKI)}.{b64(serial_octets)}").serial == serial


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected base64url"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ", "expected base64url"),  # no serial part
        (".AIdlQyE", "keyIdentifier is not unpadded base64url"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.", "serial is not unpadded base64url"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ=.AIdlQyE", "keyIdentifier is not unpadded"),  # padding
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE=", "serial is not unpadded"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdl+yE", "serial is not unpadded"),  # base64, not url
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyF", "serial is not canonical"),  # stray bits
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQ", "serial is not unpadded"),  # impossible length
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE.x", "serial is not unpadded"),
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.h2VDIQ", "serial is negative"),  # 0x87… without 00
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE", "not minimally encoded"),  # 00 01
        ("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AA", "serial is zero"),
        (f"{b64(RFC_AKI)}.{b64(LONG)}", "longer than 20 octets"),
        (f"{b64(RFC_AKI)}.{b64(LONG_WITH_SIGN)}", "longer than 20 octets"),
    ],
)
def test_malformed_cert_ids_say_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_cert_id(text)


def _certificate(serial: int) -> x509.Certificate:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    subject_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ari.example")])
    ski = x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0x87654321, 2**151 + 5, 2**159 - 1])
def test_cert_id_of_a_certificate_round_trips(serial):
    cert = _certificate(serial)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert parse_cert_id(cert_id_of(cert)) == CertId(aki.key_identifier, serial)
