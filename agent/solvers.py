"""Challenge solvers (RFC 8555 §8): http-01 standalone or webroot, dns-01 by RFC 2136 dynamic
update with TSIG or by a hook program, tls-alpn-01 (RFC 8737) on the agent's own TLS listener.

Nothing the server sends reaches a shell: hooks run as an argv list with the values in the
environment, and a token that is not plain base64url (§8.1) is refused before it can name a
path in a webroot.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

CHALLENGE_PATH = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # matched whole (fullmatch), never with "$"
HOOK_TIMEOUT_SECONDS = 300


class SolverError(Exception):
    """A challenge could not be presented; the message says why."""


def checked_token(token: str) -> str:
    """The token, if it is plain base64url (RFC 8555 §8.1); anything else is refused."""
    if not _TOKEN.fullmatch(token):
        raise SolverError("the challenge token is not plain base64url: refused")
    return token


class Http01Standalone:
    """Answers http-01 on its own listener (``address``:``port``) while an order runs."""

    challenge_type = "http-01"

    def __init__(self, address: str = "0.0.0.0", port: int = 80) -> None:  # noqa: S104
        self._address, self._port = address, port
        self._answers: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        with self._lock:
            self._answers[checked_token(token)] = key_authorization
            if self._server is None:
                self._start()

    def cleanup(self, identifier: str, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)
            if not self._answers and self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def _start(self) -> None:
        try:
            self._server = ThreadingHTTPServer((self._address, self._port), self._handler())
        except OSError as exc:
            raise SolverError(
                f"http-01: cannot listen on {self._address}:{self._port}: {exc}"
            ) from None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        answers = self._answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = (
                    self.path[len(CHALLENGE_PATH) :] if self.path.startswith(CHALLENGE_PATH) else ""
                )
                answer = answers.get(token)
                body = (answer or "").encode()
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class Http01Webroot:
    """Answers http-01 through the web server already running: a file under its webroot."""

    challenge_type = "http-01"

    def __init__(self, webroot: Path, write: Callable[[Path, bytes], None]) -> None:
        self._dir = webroot / ".well-known" / "acme-challenge"
        self._write = write

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        path = self._dir / checked_token(token)
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._write(path, key_authorization.encode())

    def cleanup(self, identifier: str, token: str) -> None:
        if _TOKEN.fullmatch(token):
            (self._dir / token).unlink(missing_ok=True)


def _record_name(identifier: str) -> str:
    """``_acme-challenge.<name>`` (RFC 8555 §8.4); a wildcard proves its base name."""
    return "_acme-challenge." + identifier.removeprefix("*.").rstrip(".") + "."


class Dns01Rfc2136:
    """Publishes the TXT record by a DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945)."""

    challenge_type = "dns-01"

    def __init__(
        self,
        *,
        server: str,
        port: int,
        zone: str,
        key_name: str,
        key_secret: str,
        algorithm: str = "hmac-sha256",
        ttl: int = 60,
        timeout: float = 10.0,
    ) -> None:
        self._server, self._port, self._timeout, self._ttl = server, port, timeout, ttl
        self._zone = dns.name.from_text(zone)
        self._keyring = dns.tsigkeyring.from_text({key_name: key_secret})
        self._key_name = dns.name.from_text(key_name)
        self._algorithm = dns.name.from_text(algorithm)
        self._published: dict[tuple[str, str], str] = {}

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        name = _record_name(identifier)
        self._send(lambda update: update.add(name, self._ttl, "TXT", f'"{key_authorization}"'))
        self._published[(identifier, token)] = key_authorization

    def cleanup(self, identifier: str, token: str) -> None:
        value = self._published.pop((identifier, token), None)
        if value is not None:
            name = _record_name(identifier)
            self._send(lambda update: update.delete(name, "TXT", f'"{value}"'))

    def _send(self, change: Callable[[dns.update.UpdateMessage], None]) -> None:
        update = dns.update.UpdateMessage(
            self._zone, keyring=self._keyring, keyname=self._key_name, keyalgorithm=self._algorithm
        )
        change(update)
        try:
            response = dns.query.tcp(update, self._server, port=self._port, timeout=self._timeout)
        except (OSError, dns.exception.DNSException) as exc:
            raise SolverError(f"dns-01: the update to {self._server} failed: {exc}") from None
        if response.rcode() != dns.rcode.NOERROR:
            raise SolverError(
                f"dns-01: {self._server} refused the update: {dns.rcode.to_text(response.rcode())}"
            )


class HookSolver:
    """Runs an operator's program to publish (``present``) and remove (``cleanup``) a
    challenge: argv only, values in the environment (CERTPLANE_IDENTIFIER, CERTPLANE_TOKEN,
    CERTPLANE_VALIDATION, CERTPLANE_ACTION), never through a shell."""

    def __init__(self, challenge_type: str, argv: Sequence[str]) -> None:
        self.challenge_type = challenge_type
        self._argv = list(argv)
        self._validations: dict[tuple[str, str], str] = {}

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self._run("present", identifier, checked_token(token), key_authorization)
        self._validations[(identifier, token)] = key_authorization

    def cleanup(self, identifier: str, token: str) -> None:
        value = self._validations.pop((identifier, token), None)
        if value is not None:
            self._run("cleanup", identifier, token, value)

    def _run(self, action: str, identifier: str, token: str, validation: str) -> None:
        env = {
            **os.environ,
            "CERTPLANE_ACTION": action,
            "CERTPLANE_CHALLENGE": self.challenge_type,
            "CERTPLANE_IDENTIFIER": identifier,
            "CERTPLANE_TOKEN": token,
            "CERTPLANE_VALIDATION": validation,
        }
        try:
            done = subprocess.run(  # noqa: S603 (an operator's argv, no shell)
                self._argv,
                env=env,
                capture_output=True,
                timeout=HOOK_TIMEOUT_SECONDS,
                check=False,
                shell=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SolverError(f"{self.challenge_type} hook {self._argv[0]}: {exc}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-300:]
            hook = f"{self.challenge_type} hook {self._argv[0]} {action}"
            raise SolverError(f"{hook} exited {done.returncode}: {tail}")


# --- tls-alpn-01 (RFC 8737) -----------------------------------------------------------------------

ACME_TLS_1 = "acme-tls/1"
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 §6.1
HANDSHAKE_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 1.0
_VALIDATION_LIFETIME = datetime.timedelta(days=1)
_READ_SIZE = 16384
# A fatal no_application_protocol alert (RFC 7301 §3.2) in a plaintext TLS record: what a client
# that did not offer acme-tls/1 gets instead of the server's first flight.
_NO_APPLICATION_PROTOCOL = bytes((21, 3, 3, 0, 2, 2, 120))


def _ip(identifier: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(identifier)
    except ValueError:
        return None


def sni_name(identifier: str) -> str:
    """The server name a validation handshake for ``identifier`` carries: the DNS name, or for
    an IP address its reverse name (``1.0.0.127.in-addr.arpa``, ``….ip6.arpa``; RFC 8738 §6)."""
    address = _ip(identifier)
    return _normalized(address.reverse_pointer if address is not None else identifier)


def _normalized(name: str) -> str:
    return name.rstrip(".").lower()


def acme_identifier_value(key_authorization: str) -> bytes:
    """The acmeIdentifier extension's value: the DER OCTET STRING of SHA-256(key
    authorization) (RFC 8737 §3)."""
    return b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()


def validation_certificate(
    identifier: str, key_authorization: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate and its fresh key: ``identifier`` as the only subjectAltName
    (a dNSName, or an iPAddress for an IP identifier: RFC 8738 §6) and the critical
    acmeIdentifier extension (RFC 8737 §3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    address = _ip(identifier)
    san = x509.IPAddress(address) if address is not None else x509.DNSName(identifier)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME tls-alpn-01 challenge")])
    acme_identifier = x509.UnrecognizedExtension(
        ACME_IDENTIFIER_OID, acme_identifier_value(key_authorization)
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDATION_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(acme_identifier, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_context() -> ssl.SSLContext:
    """TLS 1.2 or later, offering the acme-tls/1 protocol and no other (RFC 8737 §4)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_1])
    return context


def _validation_context(identifier: str, key_authorization: str) -> ssl.SSLContext:
    """A server context presenting a fresh validation certificate for ``identifier``."""
    cert, key = validation_certificate(identifier, key_authorization)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)
    context = _server_context()
    # NOTE: ssl loads a certificate from a file only: a private directory, gone once loaded.
    with tempfile.TemporaryDirectory(prefix="certplane-tls-alpn-") as directory:
        path = Path(directory) / "validation.pem"
        path.touch(mode=0o600)
        path.write_bytes(pem)
        context.load_cert_chain(path)
    return context


def _handshake(
    conn: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> bool:
    """Drive the server side of one handshake over ``conn``; True once it completed with
    acme-tls/1 negotiated. Nothing OpenSSL writes is sent before that protocol is chosen, so a
    client that did not offer it never sees the certificate (RFC 7301 §3.2: it gets a
    no_application_protocol alert). Raises OSError or ssl.SSLError (e.g. an unknown name)."""
    while True:
        data = conn.recv(_READ_SIZE)
        if not data:
            return False
        incoming.write(data)
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if (done or outgoing.pending) and tls.selected_alpn_protocol() != ACME_TLS_1:
            conn.sendall(_NO_APPLICATION_PROTOCOL)
            return False
        conn.sendall(outgoing.read())
        if done:
            return True


def _close(conn: socket.socket, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO) -> None:
    """Send close_notify and wait briefly for the client to hang up, as RFC 8737 §3 has it do
    right after the handshake (a socket closed with unread data would reset)."""
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.unwrap()
    conn.sendall(outgoing.read())
    conn.settimeout(CLOSE_TIMEOUT_SECONDS)
    while conn.recv(_READ_SIZE):
        pass


class _TlsListener(socketserver.ThreadingTCPServer):
    """A TCP listener handing each connection to ``serve`` on a thread of its own."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: str, port: int, serve: Callable[[socket.socket], None]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._serve = serve
        super().__init__((address, port), socketserver.BaseRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            self._serve(request)


class TlsAlpn01Standalone:
    """Answers tls-alpn-01 (RFC 8737) on its own TLS listener (``address``:``port``) while at
    least one challenge is presented; the listener closes with the last cleanup.

    It negotiates the ``acme-tls/1`` protocol only and picks the validation certificate by the
    SNI name: the identifier, or an IP identifier's reverse name (RFC 8737 §3, RFC 8738 §6).
    A client that does not offer ``acme-tls/1`` is refused before the certificate is sent; an
    unknown or missing name fails the handshake.
    """

    challenge_type = "tls-alpn-01"

    def __init__(self, address: str = "0.0.0.0", port: int = 443) -> None:  # noqa: S104
        self._address, self._port = address, port
        self._presented: dict[tuple[str, str], tuple[str, ssl.SSLContext]] = {}
        self._server: _TlsListener | None = None
        self._lock = threading.Lock()
        self._hello = _server_context()  # no certificate of its own: each comes by SNI
        self._hello.sni_callback = self._choose_certificate

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        """Serve a validation certificate for ``identifier`` (RFC 8737 §3), starting the
        listener if it is not running. Raises SolverError when it cannot listen."""
        key = (identifier, checked_token(token))
        entry = (sni_name(identifier), _validation_context(identifier, key_authorization))
        with self._lock:
            if self._server is None:
                self._start()
            self._presented[key] = entry

    def cleanup(self, identifier: str, token: str) -> None:
        """Stop serving that challenge's certificate; close the listener after the last."""
        with self._lock:
            self._presented.pop((identifier, token), None)
            if not self._presented and self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def _start(self) -> None:
        try:
            self._server = _TlsListener(self._address, self._port, self._answer)
        except OSError as exc:
            raise SolverError(
                f"tls-alpn-01: cannot listen on {self._address}:{self._port}: {exc}"
            ) from None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _choose_certificate(
        self, tls: ssl.SSLObject, name: str | None, _context: ssl.SSLContext
    ) -> int | None:
        """SNI callback: switch to the named validation certificate's context, or abort the
        handshake when no challenge is presented for that name."""
        context = self._context_for(_normalized(name)) if name else None
        if context is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        tls.context = context
        return None

    def _context_for(self, name: str) -> ssl.SSLContext | None:
        with self._lock:
            found = [context for sni, context in self._presented.values() if sni == name]
        return found[-1] if found else None  # the latest presented for that name

    def _answer(self, conn: socket.socket) -> None:
        """One validation handshake, then a clean close; any failure just drops the
        connection."""
        conn.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._hello.wrap_bio(incoming, outgoing, server_side=True)
        with contextlib.suppress(OSError, ssl.SSLError):
            if _handshake(conn, tls, incoming, outgoing):
                _close(conn, tls, outgoing)
