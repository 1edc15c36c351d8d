"""dns-01, tls-alpn-01 (RFC 8737), IP identifiers (RFC 8738) and CAA (RFC 8659, RFC 8657)
through the whole server, with DNS from pebble-challtestsrv."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest
from cptest.csr import csr_der
from cptest.databases import database_url
from cptest.dnslab import DnsLab
from cptest.jwsclient import ERR, RawClient, b64
from cptest.server import Platform, ServerThread, make_config, provision
from cryptography import x509


@pytest.fixture(scope="module")
def lab() -> Iterator[DnsLab]:
    with DnsLab() as dns:
        yield dns


@pytest.fixture(scope="module")
def lab_server(backend, tmp_path_factory, lab, http01, http01_port) -> Iterator[tuple]:
    directory = tmp_path_factory.mktemp(f"lab-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(
            directory,
            url,
            http01_port=http01_port,
            tlsalpn01_port=lab.tlsalpn01_port,
            dns_servers=(lab.dns_server,),
        )
        platform: Platform = provision(config, {"open": False})
        server = ServerThread(platform.config).start()
        try:
            yield server, platform
        finally:
            server.stop()


def _dns01_value(key_authorization: str) -> str:
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _client(lab_server) -> RawClient:
    _, platform = lab_server
    client = RawClient(platform.directory("open"))
    assert client.new_account().status_code == 201
    return client


def _solve(lab_server, client, order, ctype, lab, http01) -> list[dict]:
    server, _ = lab_server
    challenges = []
    for url in order["authorizations"]:
        authz = client.post(url).json()
        chall = next(c for c in authz["challenges"] if c["type"] == ctype)
        key_auth = client.key_authorization(chall["token"])
        name = authz["identifier"]["value"]
        if ctype == "dns-01":
            lab.set_txt(f"_acme-challenge.{name}", _dns01_value(key_auth))
        elif ctype == "tls-alpn-01":
            lab.add_tlsalpn01(name, key_auth)
        else:
            http01.tokens[chall["token"]] = key_auth
        assert client.post(chall["url"], {}).status_code == 200
        challenges.append(chall)
    server.drain()
    return [client.post(c["url"]).json() for c in challenges]


def _issue(client, order_url, names, ips=()) -> x509.Certificate:
    order = client.post(order_url).json()
    assert order["status"] == "ready", order
    body = client.post(order["finalize"], {"csr": b64(csr_der(names, ips=ips))}).json()
    assert body["status"] == "valid", body
    return x509.load_pem_x509_certificates(client.post(body["certificate"]).content)[0]


def test_dns01_with_a_wildcard(lab_server, lab, http01):
    client = _client(lab_server)
    response = client.new_order("*.wild.dns01.example.com", "dns01.example.com")
    order = response.json()
    results = _solve(lab_server, client, order, "dns-01", lab, http01)
    assert [c["status"] for c in results] == ["valid", "valid"]
    cert = _issue(
        client, response.headers["Location"], ["*.wild.dns01.example.com", "dns01.example.com"]
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "*.wild.dns01.example.com",
        "dns01.example.com",
    ]


def test_dns01_wrong_value_is_unauthorized(lab_server, lab, http01):
    client = _client(lab_server)
    order = client.new_order("wrong.dns01.example.com").json()
    lab.set_txt("_acme-challenge.wrong.dns01.example.com", "not-the-digest")
    authz = client.post(order["authorizations"][0]).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    client.post(chall["url"], {})
    lab_server[0].drain()
    result = client.post(chall["url"]).json()
    assert result["status"] == "invalid"
    assert result["error"]["type"] == ERR + "unauthorized"


def test_tls_alpn01(lab_server, lab, http01):
    client = _client(lab_server)
    response = client.new_order("alpn.example.com")
    results = _solve(lab_server, client, response.json(), "tls-alpn-01", lab, http01)
    assert results[0]["status"] == "valid", results
    _issue(client, response.headers["Location"], ["alpn.example.com"])


def test_ip_identifier_by_http01(lab_server, lab, http01):
    client = _client(lab_server)
    response = client.new_order(ip=("127.0.0.1",))
    results = _solve(lab_server, client, response.json(), "http-01", lab, http01)
    assert results[0]["status"] == "valid", results
    cert = _issue(client, response.headers["Location"], [], ips=("127.0.0.1",))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_http01_name_resolved_through_dns(lab_server, lab, http01):
    client = _client(lab_server)
    response = client.new_order("web.http01.example.com")
    results = _solve(lab_server, client, response.json(), "http-01", lab, http01)
    assert results[0]["status"] == "valid", results


@pytest.mark.parametrize(
    ("policy", "ok"),
    [
        ({"tag": "issue", "value": "certplane.test"}, True),
        ({"tag": "issue", "value": "other-ca.example"}, False),
        ({"tag": "issue", "value": "certplane.test; validationmethods=dns-01"}, False),
        ({"tag": "issue", "value": "certplane.test; validationmethods=http-01"}, True),
        (
            {"tag": "issue", "value": "certplane.test; accounturi=https://nowhere.example/acct/1"},
            False,
        ),
    ],
)
def test_caa(lab_server, lab, http01, policy, ok):
    client = _client(lab_server)
    name = f"caa{abs(hash(policy['value'])) % 10**8}.caa.example.com"
    lab.add_caa(name, [policy])
    response = client.new_order(name)
    result = _solve(lab_server, client, response.json(), "http-01", lab, http01)[0]
    if ok:
        assert result["status"] == "valid", result
    else:
        assert result["status"] == "invalid"
        assert result["error"]["type"] == ERR + "caa"


def test_caa_accounturi_of_this_account_permits(lab_server, lab, http01):
    client = _client(lab_server)
    name = "mine.caa.example.com"
    lab.add_caa(name, [{"tag": "issue", "value": f"certplane.test; accounturi={client.kid}"}])
    response = client.new_order(name)
    assert (
        _solve(lab_server, client, response.json(), "http-01", lab, http01)[0]["status"] == "valid"
    )
