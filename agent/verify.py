"""Deployment with proof: what an endpoint actually serves, by a TLS handshake."""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    sni: str | None


@dataclass(frozen=True)
class Served:
    """The leaf an endpoint presented (its SHA-256 fingerprint), or why none was seen."""

    endpoint: Endpoint
    fingerprint: str | None
    error: str | None = None


def fingerprint_of(cert_pem_or_der: bytes) -> str:
    """The SHA-256 of the certificate's DER, in hex."""
    der = cert_pem_or_der
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        der = x509.load_pem_x509_certificate(cert_pem_or_der).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def served_certificate(endpoint: Endpoint, timeout: float = 5.0) -> Served:
    """Handshake with ``endpoint`` (SNI as configured) and fingerprint the leaf it served.

    No chain validation: the question is which certificate is served, not whether to trust it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=endpoint.sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return Served(endpoint, None, f"{type(exc).__name__}: {exc}")
    if der is None:
        return Served(endpoint, None, "no certificate was presented")
    return Served(endpoint, hashlib.sha256(der).hexdigest())
