"""Private keys and CSRs, made on the host: the key never leaves it (only the CSR does)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from acme import crypto_util
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")


def generate_key(key_type: str) -> PrivateKeyTypes:
    """A new private key of ``key_type`` (one of ``KEY_TYPES``)."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"unknown key type {key_type!r} (known: {', '.join(KEY_TYPES)})")


def key_pem(key: PrivateKeyTypes) -> bytes:
    """PKCS#8 PEM, unencrypted: it is written 0600 and read by the TLS server."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem, password=None)


def csr_pem(key: PrivateKeyTypes, names: Sequence[str]) -> bytes:
    """A CSR for ``names`` (DNS names and IP addresses, RFC 8738)."""
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name in names:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name)
    return crypto_util.make_csr(key_pem(key), dns or None, ipaddrs=ips or None)
