"""Debian's Pebble as a reference target: its config and a loopback TLS certificate."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def loopback_tls_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (OpenSSL wants CA:true on it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    return cert_path, key_path


def write_pebble_config(
    directory: Path,
    *,
    port: int,
    management_port: int,
    http01_port: int,
    tls_port: int,
    common_name: str = "pebble loopback",
    eab_keys: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """A Pebble config on loopback ports with a fresh TLS certificate.

    With ``eab_keys`` ({kid: base64url HMAC key}) Pebble requires External Account Binding.
    Returns the config path and the certificate clients should trust.
    """
    cert, key = loopback_tls_certificate(directory, common_name)
    config: dict[str, Any] = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http01_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab_keys is not None,
            **({"externalAccountMACKeys": eab_keys} if eab_keys is not None else {}),
        }
    }
    path = directory / "pebble-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path, cert
