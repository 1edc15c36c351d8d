"""The agent answers tls-alpn-01 (RFC 8737) on its own listener: certificates issued by a real
certplane for a DNS name and for an IP address (RFC 8738 §6), the validation certificate the
listener serves checked against the RFC, refusals (no acme-tls/1, unknown name) that never show
the certificate, and a listener that is gone after the last cleanup."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import josepy as jose
import pytest
from acme import challenges
from cptest.agentconf import write_agent_config
from cptest.databases import database_url
from cptest.net import free_port
from cptest.server import ServerThread, make_config, provision
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from certplane.agent.acme_flow import AcmeSession, key_authorization
from certplane.agent.config import load_config
from certplane.agent.engine import Agent
from certplane.agent.keys import csr_pem, generate_key
from certplane.agent.solvers import SolverError, TlsAlpn01Standalone

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ACME_TLS_1 = "acme-tls/1"
NO_APPLICATION_PROTOCOL = bytes((21, 3, 3, 0, 2, 2, 120))  # fatal alert 120, RFC 7301 §3.2
KEY_AUTHZ = "dG9rZW4tZm9yLWEtdGVzdA.thumbprint-stand-in"


@pytest.fixture(scope="module")
def tlsalpn01_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def certplane(backend, tmp_path_factory, tlsalpn01_port) -> Iterator[tuple[ServerThread, str]]:
    directory = tmp_path_factory.mktemp(f"agent-tlsalpn-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, tlsalpn01_port=tlsalpn01_port)
        platform = provision(config, {"fleet": True})
        server = ServerThread(config).start()
        try:
            yield server, platform.directory("fleet")
        finally:
            server.stop()


@pytest.fixture
def solver(tlsalpn01_port) -> Iterator[TlsAlpn01Standalone]:
    solver = TlsAlpn01Standalone("127.0.0.1", tlsalpn01_port)
    yield solver
    for identifier, token in list(solver._presented):
        solver.cleanup(identifier, token)


def _enrolled(certplane) -> AcmeSession:
    server, directory = certplane
    eab = server.call(lambda: server.provisioner().create_eab("fleet", "agent-tlsalpn"))
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    session = AcmeSession(directory, key, None)
    session.enroll(eab_kid=eab.kid, eab_hmac_key=eab.hmac_key, contact=[])
    return session


def _client_context(alpn: list[str] | None, maximum: ssl.TLSVersion | None = None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the validation certificate is self-signed by design
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def _validation_handshake(port: int, sni: str | None, alpn: list[str]) -> tuple[str | None, bytes]:
    """Handshake as a validating CA would; the negotiated protocol and the served leaf (DER)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        _client_context(alpn).wrap_socket(raw, server_hostname=sni) as tls,
    ):
        return tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True) or b""


def _bytes_after_hello(port: int, sni: str | None, alpn: list[str] | None, **kw) -> bytes:
    """Send one ClientHello and return every byte the listener sends back until it hangs up:
    what a client that is refused gets to see."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = _client_context(alpn, **kw).wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(outgoing.read())
        while chunk := raw.recv(65536):
            received += chunk
    return received


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def _sans(pem: str) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return sorted(san.get_values_for_type(x509.DNSName)), ips


# --- against a real certplane ---------------------------------------------------------------------


def test_a_dns_name_is_issued_by_tls_alpn01(certplane, solver, tlsalpn01_port):
    key = generate_key("ec-p256")
    names = ["alpn.fleet.localhost"]
    issued = _enrolled(certplane).issue(csr_pem(key, names), {"tls-alpn-01": solver})
    assert _sans(issued.cert_pem) == (names, [])
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert leaf.public_key() == key.public_key()
    assert not _listening(tlsalpn01_port)  # the order's cleanup closed the listener


def test_an_ip_address_is_issued_by_tls_alpn01(certplane, solver, tlsalpn01_port):
    """RFC 8738 §6: the CA sends the reverse name as SNI; the certificate names the address."""
    csr = csr_pem(generate_key("ec-p256"), ["127.0.0.1"])
    issued = _enrolled(certplane).issue(csr, {"tls-alpn-01": solver})
    assert _sans(issued.cert_pem) == ([], ["127.0.0.1"])
    assert not _listening(tlsalpn01_port)


def _agent_config(tmp_path: Path, certplane, port: int) -> Path:
    server, directory = certplane
    certificate = f"""
[[certificate]]
name = "edge"
names = ["edge.fleet.localhost"]
[certificate.challenge]
type = "tls-alpn-01"
mode = "standalone"
address = "127.0.0.1"
port = {port}
[certificate.deploy]
cert = "{{roots}}/edge.pem"
fullchain = "{{roots}}/edge-full.pem"
key = "{{roots}}/edge.key"
"""
    return write_agent_config(
        tmp_path, server, tenant="fleet", directory=directory, certificate=certificate
    )


def test_the_agent_issues_with_a_configured_tls_alpn01_challenge(
    certplane, tlsalpn01_port, tmp_path
):
    """``type = "tls-alpn-01"``, ``mode = "standalone"`` in the agent's configuration."""
    config = load_config(_agent_config(tmp_path, certplane, tlsalpn01_port))
    step = Agent(config).issue(config.certificates[0])
    assert step.ok, step.detail
    assert _sans((tmp_path / "ssl" / "edge.pem").read_text()) == (["edge.fleet.localhost"], [])
    assert not _listening(tlsalpn01_port)


def test_the_key_authorization_is_the_one_the_acme_library_makes():
    """tls-alpn-01 is unknown to certbot 5's acme library: the agent makes the key
    authorization itself (RFC 8555 §8.1), as the library does for http-01."""
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    chall = challenges.HTTP01(token=b"0123456789abcdef")
    token = chall.encode("token")
    assert key_authorization(token, key) == chall.key_authorization(key)


# --- the listener, against the RFC ----------------------------------------------------------------


def test_the_validation_certificate_follows_rfc8737(solver, tlsalpn01_port):
    solver.present("web.fleet.localhost", "tok", KEY_AUTHZ)
    protocol, der = _validation_handshake(tlsalpn01_port, "web.fleet.localhost", [ACME_TLS_1])
    assert protocol == ACME_TLS_1
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.DNSName("web.fleet.localhost")]
    acme = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert acme.critical
    assert acme.value.value == b"\x04\x20" + hashlib.sha256(KEY_AUTHZ.encode()).digest()


def test_an_ip_identifier_is_served_by_its_reverse_name(solver, tlsalpn01_port):
    """RFC 8738 §6: SNI is the in-addr.arpa / ip6.arpa name; the SAN is an iPAddress."""
    for address in ("127.0.0.1", "2001:db8::7"):
        solver.present(address, "tok" + str(len(address)), KEY_AUTHZ)
        sni = ipaddress.ip_address(address).reverse_pointer
        _, der = _validation_handshake(tlsalpn01_port, sni, [ACME_TLS_1])
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert list(san.value) == [x509.IPAddress(ipaddress.ip_address(address))]
    # an address is never a server name (RFC 6066 §3): such a client sends no SNI at all
    assert _bytes_after_hello(tlsalpn01_port, "127.0.0.1", [ACME_TLS_1]) == b""


def test_only_acme_tls_1_is_negotiated(solver, tlsalpn01_port):
    solver.present("web.fleet.localhost", "tok", KEY_AUTHZ)
    protocol, _ = _validation_handshake(tlsalpn01_port, "web.fleet.localhost", ["h2", ACME_TLS_1])
    assert protocol == ACME_TLS_1


@pytest.mark.parametrize("alpn", [None, ["h2"], ["http/1.1", "acme-tls/2"]])
@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2])
def test_a_client_without_acme_tls_1_gets_an_alert_and_no_certificate(
    solver, tlsalpn01_port, alpn, maximum
):
    """RFC 8737 §4 / RFC 7301 §3.2: the answer is one no_application_protocol alert, nothing
    else (under TLS 1.2 a certificate would travel in the clear)."""
    solver.present("web.fleet.localhost", "tok", KEY_AUTHZ)
    received = _bytes_after_hello(tlsalpn01_port, "web.fleet.localhost", alpn, maximum=maximum)
    assert received == NO_APPLICATION_PROTOCOL
    with (
        pytest.raises(ssl.SSLError, match="alert no application protocol"),
        socket.create_connection(("127.0.0.1", tlsalpn01_port), timeout=5) as raw,
    ):
        _client_context(alpn, maximum).wrap_socket(raw, server_hostname="web.fleet.localhost")


@pytest.mark.parametrize("sni", ["other.fleet.localhost", None])
def test_an_unknown_or_missing_name_fails_the_handshake(solver, tlsalpn01_port, sni):
    solver.present("web.fleet.localhost", "tok", KEY_AUTHZ)
    assert _bytes_after_hello(tlsalpn01_port, sni, [ACME_TLS_1]) == b""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _validation_handshake(tlsalpn01_port, sni, [ACME_TLS_1])


def test_the_listener_lives_from_the_first_present_to_the_last_cleanup(solver, tlsalpn01_port):
    assert not _listening(tlsalpn01_port)
    solver.present("a.fleet.localhost", "ta", KEY_AUTHZ)
    solver.present("b.fleet.localhost", "tb", KEY_AUTHZ)
    solver.cleanup("a.fleet.localhost", "ta")
    assert _validation_handshake(tlsalpn01_port, "b.fleet.localhost", [ACME_TLS_1])[1]
    assert _bytes_after_hello(tlsalpn01_port, "a.fleet.localhost", [ACME_TLS_1]) == b""
    solver.cleanup("b.fleet.localhost", "tb")
    assert not _listening(tlsalpn01_port)
    solver.present("c.fleet.localhost", "tc", KEY_AUTHZ)  # and it starts again
    assert _validation_handshake(tlsalpn01_port, "c.fleet.localhost", [ACME_TLS_1])[1]


def test_a_busy_port_and_a_bad_token_are_refused(solver, tlsalpn01_port):
    with (
        socket.create_server(("127.0.0.1", tlsalpn01_port)),
        pytest.raises(SolverError, match=r"tls-alpn-01: cannot listen on 127\.0\.0\.1"),
    ):
        solver.present("web.fleet.localhost", "tok", KEY_AUTHZ)
    with pytest.raises(SolverError, match="base64url"):
        solver.present("web.fleet.localhost", "../tok", KEY_AUTHZ)
    assert not _listening(tlsalpn01_port)
