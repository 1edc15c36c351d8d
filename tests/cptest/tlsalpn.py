"""tls-alpn-01 validation certificates (RFC 8737 §3) and a threaded loopback responder.

Computed independently of certplane's VA, so tests check the VA against the RFC, not itself.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ACME_TLS_ALPN = "acme-tls/1"


def acme_identifier_value(key_authorization: str) -> bytes:
    """The acmeIdentifier extension value: DER OCTET STRING of SHA-256(key authorization)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key_authorization.encode())
    return b"\x04\x20" + digest.finalize()


def write_validation_cert(
    directory: Path,
    sans: list[x509.GeneralName],
    acme_value: bytes | None,
    critical: bool = True,
) -> tuple[Path, Path]:
    """A self-signed RFC 8737 certificate in ``directory``; returns (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme validation")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if acme_value is not None:
        ext = x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, acme_value)
        builder = builder.add_extension(ext, critical=critical)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsAlpn01Responder:
    """Answers TLS handshakes on ``host:port`` with one validation certificate at a time.

    ``present(sans, key_authorization)`` chooses the certificate; every SNI name a handshake
    carried is recorded in ``sni`` (RFC 8738 §6 wants the reverse name for an IP).
    """

    def __init__(self, host: str, port: int) -> None:
        self.sni: list[str | None] = []
        self._dir = Path(tempfile.mkdtemp(prefix="tlsalpn01-"))
        self._context: ssl.SSLContext | None = None
        self._listener = socket.create_server((host, port))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def present(self, sans: list[x509.GeneralName], key_authorization: str) -> None:
        cert, key = write_validation_cert(self._dir, sans, acme_identifier_value(key_authorization))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols([ACME_TLS_ALPN])
        context.sni_callback = self._record_sni  # type: ignore[assignment]
        self._context = context

    def _record_sni(self, _obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            if self._context is None:
                return
            try:
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def __enter__(self) -> TlsAlpn01Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5)
