"""tls-alpn-01 (RFC 8737; RFC 8738 §6 for IP identifiers).

Connect to a vetted address on the tls-alpn-01 port, offer exactly the ALPN protocol
``acme-tls/1`` with SNI set to the name (for an IP, its reverse name, e.g.
``4.3.2.1.in-addr.arpa``), and do not verify the chain: the self-signed validation certificate is
the proof. It must carry exactly one subjectAltName, equal to the identifier, and the critical
acmeIdentifier extension holding the SHA-256 digest of the key authorization (RFC 8737 §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ssl
from ipaddress import ip_address

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.model import Identifier, IdentifierType
from certplane.server.va.api import IPAddress, NetworkPolicy, Resolver, ValidationRecord
from certplane.server.va.targets import DialError, dial, new_record, resolve_target

ACME_TLS_1 = "acme-tls/1"
# id-pe-acmeIdentifier (RFC 8737 §6.1).
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
_CLOSE_TIMEOUT = 1.0


def expected_extension_value(key_authorization: str) -> bytes:
    """The extension's DER value: OCTET STRING (tag 4, length 32) of SHA-256(key authz)."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return bytes((0x04, len(digest))) + digest


def sni_name(identifier: Identifier) -> str:
    """SNI to send: the name, or an IP's reverse name without the trailing dot (RFC 8738 §6)."""
    name: str = identifier.value
    if identifier.type is IdentifierType.IP:
        return ip_address(name).reverse_pointer
    return name


def client_context() -> ssl.SSLContext:
    """TLS ≥ 1.2, ALPN exactly ``acme-tls/1``, no chain or name verification (RFC 8737 §3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ACME_TLS_1])
    return ctx


async def validate_tlsalpn01(
    resolver: Resolver,
    policy: NetworkPolicy,
    identifier: Identifier,
    key_authorization: str,
    records: list[ValidationRecord],
) -> None:
    """Handshake with the identifier's host and check its certificate; raise `AcmeProblem`."""
    port = policy.tlsalpn01_port
    record = new_record(identifier.value, port)
    records.append(record)
    target = await resolve_target(resolver, policy, identifier.value, record)
    sni = sni_name(identifier)

    async def attempt(address: IPAddress, connect_timeout: float | None) -> bytes:
        return await _handshake(address, port, sni, connect_timeout)

    der = await dial(target, policy, record, attempt)
    check_certificate(identifier, der, key_authorization)


async def _handshake(
    address: IPAddress, port: int, sni: str, connect_timeout: float | None
) -> bytes:
    """Connect (dial errors raise `DialError`), then handshake; return the peer's DER cert."""
    where = f"{address} port {port}"
    try:
        connecting = asyncio.open_connection(str(address), port)
        _, writer = await asyncio.wait_for(connecting, connect_timeout)
    except TimeoutError as exc:
        raise DialError(f"{where}: Timeout during connect (likely firewall problem)") from exc
    except OSError as exc:
        raise DialError(f"{where}: {exc.strerror or type(exc).__name__}") from exc
    completed = False
    try:
        await writer.start_tls(client_context(), server_hostname=sni)
        der = _negotiated_certificate(writer, where)
        completed = True
        return der
    except ssl.SSLError as exc:
        detail = f"{where}: TLS handshake failed ({_reason(exc)})"
        raise AcmeProblem(ProblemType.TLS, detail) from exc
    except OSError as exc:
        detail = f"{where}: connection lost during the TLS handshake"
        raise AcmeProblem(ProblemType.CONNECTION, detail) from exc
    finally:
        await _close(writer, graceful=completed)


async def _close(writer: asyncio.StreamWriter, *, graceful: bool) -> None:
    """Send close_notify after a good handshake; otherwise (failure, timeout) just drop it."""
    if not graceful:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.library or "unknown error")


def _negotiated_certificate(writer: asyncio.StreamWriter, where: str) -> bytes:
    """Insist on the acme-tls/1 protocol and return the leaf certificate (DER)."""
    tls = writer.get_extra_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject) or tls.selected_alpn_protocol() != ACME_TLS_1:
        raise AcmeProblem(
            ProblemType.UNAUTHORIZED,
            f'{where}: cannot negotiate ALPN protocol "{ACME_TLS_1}" for tls-alpn-01 challenge',
        )
    der = tls.getpeercert(binary_form=True)
    if not der:
        raise AcmeProblem(ProblemType.TLS, f"{where}: no certificate presented")
    return der


def check_certificate(identifier: Identifier, der: bytes, key_authorization: str) -> None:
    """The RFC 8737 §3 certificate checks, each failure with its own precise detail."""
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except ValueError as exc:
        raise _incorrect(identifier, "the certificate cannot be parsed") from exc
    _check_san(identifier, extensions)
    _check_acme_identifier(identifier, extensions, key_authorization)


def _check_san(identifier: Identifier, extensions: x509.Extensions) -> None:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise _incorrect(identifier, "it has no subjectAltName extension") from exc
    names = list(san)
    if len(names) != 1:
        raise _incorrect(identifier, f"it has {len(names)} subjectAltNames, expected exactly 1")
    if not _san_matches(identifier, names[0]):
        raise _incorrect(identifier, f"its subjectAltName is {_describe(names[0])}")


def _san_matches(identifier: Identifier, name: x509.GeneralName) -> bool:
    if identifier.type is IdentifierType.IP:
        return isinstance(name, x509.IPAddress) and name.value == ip_address(identifier.value)
    return isinstance(name, x509.DNSName) and name.value.lower() == identifier.value.lower()


def _describe(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName | x509.IPAddress):
        return f"{type(name).__name__} {name.value}"
    return f"a {type(name).__name__}"


def _check_acme_identifier(
    identifier: Identifier, extensions: x509.Extensions, key_authorization: str
) -> None:
    try:
        ext = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound as exc:
        raise _incorrect(identifier, "it has no acmeIdentifier extension") from exc
    if not ext.critical:
        raise _incorrect(identifier, "its acmeIdentifier extension is not critical")
    value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    if not hmac.compare_digest(value, expected_extension_value(key_authorization)):
        raise _incorrect(
            identifier, "its acmeIdentifier extension does not hold the key authorization digest"
        )


def _incorrect(identifier: Identifier, why: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.UNAUTHORIZED,
        f"Incorrect validation certificate for tls-alpn-01 challenge for {identifier.value}: {why}",
    )
