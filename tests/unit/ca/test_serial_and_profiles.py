"""new_serial (RFC 5280 §4.1.2.2), profiles, and the package's import boundary."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from certplane.ca.api import SERIAL_BITS, new_serial
from certplane.ca.profiles import DEFAULT_PROFILES, Profile

SAMPLES = [new_serial() for _ in range(2000)]


def _der_serial_octets(serial: int) -> bytes:
    """The content octets of the serialNumber INTEGER of a certificate carrying `serial`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2026, 2, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    tbs = cert.tbs_certificate_bytes
    # tbsCertificate: SEQUENCE { [0] { INTEGER 2 }, INTEGER serial, ... }; [0] is 5 octets.
    header = 4 if tbs[1] == 0x82 else 3 if tbs[1] == 0x81 else 2
    serial_at = header + 5
    assert tbs[serial_at] == 0x02
    length = tbs[serial_at + 1]
    return tbs[serial_at + 2 : serial_at + 2 + length]


def test_serials_have_constant_length_and_are_positive() -> None:
    assert SERIAL_BITS == 127
    for serial in SAMPLES:
        assert serial > 0
        assert serial.bit_length() == 127
        assert len(serial.to_bytes(16, "big", signed=True)) == 16


def test_serial_der_encoding_is_16_octets_without_padding() -> None:
    for serial in SAMPLES[:20]:
        octets = _der_serial_octets(serial)
        assert len(octets) == 16
        assert 0x40 <= octets[0] <= 0x7F
        assert int.from_bytes(octets, "big") == serial


def test_serials_are_unique_and_every_random_bit_varies() -> None:
    assert len(set(SAMPLES)) == len(SAMPLES)
    ones = zeros = 0
    for serial in SAMPLES:
        ones |= serial
        zeros |= ~serial
    random_bits = (1 << 126) - 1
    assert ones & random_bits == random_bits
    assert zeros & random_bits == random_bits


# --- profiles ---


def test_default_profiles() -> None:
    default, both = DEFAULT_PROFILES["default"], DEFAULT_PROFILES["tls-client-server"]
    assert default.extended_key_usages == (ExtendedKeyUsageOID.SERVER_AUTH,)
    assert both.extended_key_usages == (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    assert default.validity == timedelta(days=90)
    assert default.backdate == timedelta(minutes=1)
    with pytest.raises(TypeError):
        DEFAULT_PROFILES["x"] = default


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_validity_window(now: datetime) -> None:
    profile = DEFAULT_PROFILES["default"]
    not_before, not_after = profile.validity_window(now)
    assert not_before.microsecond == 0
    assert now - timedelta(minutes=1, seconds=1) < not_before <= now - timedelta(minutes=1)
    assert not_after - not_before + timedelta(seconds=1) == profile.validity


def test_validity_window_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DEFAULT_PROFILES["default"].validity_window(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x", "validity": timedelta(days=200)},
        {"name": "x", "validity": timedelta(0)},
        {"name": "x", "backdate": timedelta(seconds=-1)},
    ],
)
def test_invalid_profiles(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"profile|name"):
        Profile(**kwargs)


def test_ca_never_imports_server() -> None:
    """The import-linter contract, checked in a clean interpreter."""
    modules = [
        "api",
        "errors",
        "hierarchy",
        "local",
        "profiles",
        "signing",
        "keys.api",
        "keys.envelope",
        "keys.errors",
        "keys.software",
    ]
    code = "; ".join(f"import certplane.ca.{m}" for m in modules) + (
        "; import sys; leaked = [m for m in sys.modules if m.startswith('certplane.server')]"
        "; assert not leaked, leaked"
        "; assert 'ca' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
