"""RFC 8738: IP identifiers, validated with http-01 and tls-alpn-01 on loopback addresses.

The lab's http-01 responder listens on 127.0.0.1; a tls-alpn-01 responder of this module
listens on 127.0.0.2 at the port the target validates against (the lab's own responder holds
127.0.0.1 there), so the order for 127.0.0.2 reaches it.
"""

from __future__ import annotations

import ipaddress

import pytest
from cptest.conf_acme import account, authorize, need_lab, problem, unique
from cptest.conf_acmelib import library, obtain, register, sans
from cptest.csr import csr_der
from cptest.jwsclient import b64
from cptest.tlsalpn import TlsAlpn01Responder
from cryptography import x509

HTTP_IP = "127.0.0.1"
TLS_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def client(target):
    need_lab(target)
    return account(target)


@pytest.fixture(scope="module")
def tls_responder(target):
    need_lab(target)
    with TlsAlpn01Responder(TLS_IP, target.lab.tlsalpn01_port) as responder:
        yield responder


def ip(value: str) -> dict[str, str]:
    return {"type": "ip", "value": value}


def order_for(client, *identifiers: dict[str, str]):
    return client.post(client.directory["newOrder"], {"identifiers": list(identifiers)})


def challenge_types(client, order: dict) -> set[str]:
    authz = client.post(order["authorizations"][0]).json()
    return {c["type"] for c in authz["challenges"]}


def test_ipv4_identifier_is_accepted(client):
    """§3: an identifier of type "ip" whose value is an IPv4 address in the textual form of
    RFC 1123 §2.1 can be ordered; the order and its authorization carry it."""
    response = order_for(client, ip("192.0.2.7"))
    assert response.status_code == 201, response.text
    assert response.json()["identifiers"] == [ip("192.0.2.7")]
    authz = client.post(response.json()["authorizations"][0]).json()
    assert authz["identifier"] == ip("192.0.2.7")


def test_ipv6_identifier_is_accepted(client):
    """§3: an IPv6 value "MUST" be in the textual form of RFC 5952 §4."""
    response = order_for(client, ip("2001:db8::7"))
    assert response.status_code == 201, response.text
    assert response.json()["identifiers"] == [ip("2001:db8::7")]


def test_non_canonical_ipv6_is_refused_or_canonicalised(client):
    """§3: the value must be the RFC 5952 form; a server either refuses another spelling or
    answers with the canonical one, never echoes a non-canonical address."""
    response = order_for(client, ip("2001:0DB8:0:0::7"))
    if response.status_code == 201:
        assert response.json()["identifiers"] == [ip("2001:db8::7")]
    else:
        doc = problem(response, status=400)
        assert doc["type"].rsplit(":", 1)[1] in ("malformed", "rejectedIdentifier")


@pytest.mark.parametrize("value", ["300.1.2.3", "192.0.2", "example.com", "", "1.2.3.4/32"])
def test_invalid_ip_value_is_refused(client, value):
    """§3: the value of an "ip" identifier is an IP address; anything else is refused."""
    doc = problem(order_for(client, ip(value)), status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("malformed", "rejectedIdentifier")


def test_dns01_is_not_offered_for_ip(client):
    """§7: "The existing "dns-01" challenge MUST NOT be used to validate IP identifiers"."""
    order = new_order_ip(client, "192.0.2.8")
    assert "dns-01" not in challenge_types(client, order)
    assert "http-01" in challenge_types(client, order)


def new_order_ip(client, *values: str) -> dict:
    response = order_for(client, *(ip(v) for v in values))
    assert response.status_code == 201, response.text
    return {**response.json(), "url": response.headers["Location"]}


def test_http01_for_ip_issues_an_ip_certificate(target):
    """§4: http-01 for an IP identifier connects to the address itself; §3: the certificate
    carries the address in an iPAddress subjectAltName (acme library)."""
    need_lab(target)
    lib = register(target, library(target))
    issued = obtain(target, lib, ips=[HTTP_IP])
    assert sans(issued.cert) == ([], [HTTP_IP])


def test_mixed_dns_and_ip_order(target):
    """§3 with RFC 8555 §7.4: one order may hold DNS and IP identifiers; the certificate
    names both, each in its own SAN type (acme library)."""
    need_lab(target)
    lib = register(target, library(target))
    name = unique("mixed")
    issued = obtain(target, lib, [name], ips=[HTTP_IP])
    assert sans(issued.cert) == ([name], [HTTP_IP])


def test_ip_in_dns_name_san_is_bad_csr(target, client):
    """§3: an IP identifier is certified in an iPAddress SAN; a CSR naming the address in a
    dNSName instead does not match the order and is refused (RFC 8555 §7.4 badCSR)."""
    order = authorize(target, client, new_order_ip(client, HTTP_IP))
    assert order["status"] == "ready", order
    response = client.post(order["finalize"], {"csr": b64(csr_der([HTTP_IP]))})
    problem(response, "badCSR", 400)


def test_tls_alpn01_for_ip_uses_the_reverse_name(target, client, tls_responder):
    """§6: for an IP identifier the server sends the reverse DNS name of the address
    (in-addr.arpa) as SNI, and the validation certificate carries the address in an
    iPAddress subjectAltName."""
    order = new_order_ip(client, TLS_IP)
    authz = client.post(order["authorizations"][0]).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
    address = ipaddress.ip_address(TLS_IP)
    tls_responder.present([x509.IPAddress(address)], client.key_authorization(chall["token"]))
    client.post(chall["url"], {})
    body = client.poll(chall["url"], ("valid", "invalid"))
    assert body["status"] == "valid", body
    assert address.reverse_pointer in tls_responder.sni


def test_new_ip_order_is_pending(client):
    """RFC 8555 §7.1.6 for IP orders too: a new order is "pending" until its authorizations
    are valid."""
    assert new_order_ip(client, "192.0.2.9")["status"] == "pending"
