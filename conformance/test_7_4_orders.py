"""RFC 8555 §7.4: applying for certificate issuance."""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, issue, new_order, problem, ready_order, unique
from cptest.csr import csr_der
from cptest.jwsclient import b64
from cryptography import x509


@pytest.fixture(scope="module")
def client(target):
    return account(target)


def test_new_order_is_201_with_location(client):
    """§7.4: "the server ... returns a 201 (Created) response" with the order's URL in Location."""
    response = client.new_order(unique())
    assert response.status_code == 201
    assert response.headers["Location"]


def test_new_order_object(client):
    """§7.1.3: the order has status "pending", the identifiers, authorizations and finalize."""
    name = unique()
    order = new_order(client, name)
    assert order["status"] == "pending"
    assert order["identifiers"] == [{"type": "dns", "value": name}]
    assert len(order["authorizations"]) == 1
    assert order["finalize"].startswith(("http://", "https://"))


def test_order_has_expires(client):
    """§7.1.3: "expires" is REQUIRED for objects with status "pending" or "valid"."""
    assert "expires" in new_order(client, unique())


def test_one_authorization_per_identifier(client):
    """§7.1.3: one authorization for each identifier in the order."""
    order = new_order(client, unique("a"), unique("b"), unique("c"))
    assert len(order["authorizations"]) == 3
    assert len(set(order["authorizations"])) == 3


def test_order_post_as_get(client):
    """§7.4: the client can POST-as-GET the order URL to learn its status."""
    order = new_order(client, unique())
    body = client.post(order["url"]).json()
    assert body["status"] == "pending"
    assert body["identifiers"] == order["identifiers"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="no-identifiers"),
        pytest.param({"identifiers": []}, id="empty"),
        pytest.param({"identifiers": "a.example.com"}, id="string"),
        pytest.param({"identifiers": [{"type": "dns"}]}, id="no-value"),
    ],
)
def test_malformed_new_order(client, payload):
    """§7.4: "identifiers" (required, array of object); a request without a usable array is
    malformed."""
    problem(client.post(client.directory["newOrder"], payload), "malformed", 400)


@pytest.mark.parametrize(
    "identifier",
    [
        pytest.param({"type": "email", "value": "a@example.com"}, id="email"),
        pytest.param({"type": "foo", "value": "a.example.com"}, id="unknown"),
    ],
)
def test_unsupported_identifier_type(client, identifier):
    """§7.4: "If the server is unwilling to issue for the identifier type, it returns
    unsupportedIdentifier" (§6.7: "An identifier is of an unsupported type")."""
    response = client.post(client.directory["newOrder"], {"identifiers": [identifier]})
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("unsupportedIdentifier", "malformed")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("-bad.example.com", id="leading-hyphen"),
        pytest.param("bad..example.com", id="empty-label"),
        pytest.param("a" * 64 + ".example.com", id="long-label"),
        pytest.param("*.*.example.com", id="double-wildcard"),
        pytest.param("foo.*.example.com", id="inner-wildcard"),
        pytest.param("under_score.example.com", id="underscore"),
        pytest.param("example", id="single-label"),
    ],
)
def test_rejected_identifier(client, name):
    """§7.4: "If the server is unwilling to issue for the identifiers, it MUST return an error
    (rejectedIdentifier)"; §6.7 "rejectedIdentifier: The server will not issue for the
    identifier"."""
    response = client.new_order(name)
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("rejectedIdentifier", "malformed")


def test_finalize_before_ready_is_order_not_ready(client):
    """§7.4: "A request to finalize an order will result in error if the order is not in the
    "ready" state ... orderNotReady" (403)."""
    name = unique()
    order = new_order(client, name)
    response = client.post(order["finalize"], {"csr": b64(csr_der([name]))})
    problem(response, "orderNotReady", 403)


def test_full_issuance(target, client):
    """§7.4: ready → finalize → valid with a "certificate" URL; §7.4.2 the certificate is
    "application/pem-certificate-chain"."""
    name = unique("issue")
    _, chain = issue(target, client, name)
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [name]


def test_certificate_content_type(target, client):
    """§7.4.2: "The default format of the certificate is application/pem-certificate-chain"."""
    order, _ = issue(target, client, unique())
    response = client.post(order["certificate"])
    assert response.headers["Content-Type"].startswith("application/pem-certificate-chain")


def test_ready_order_has_all_authorizations_valid(target, client):
    """§7.1.6: an order becomes "ready" when all its authorizations are "valid"."""
    order = ready_order(target, client, unique(), unique())
    for url in order["authorizations"]:
        assert client.post(url).json()["status"] == "valid"


@pytest.mark.parametrize("case", ["missing-name", "extra-name", "not-der", "no-csr"])
def test_bad_csr(target, client, case):
    """§7.4: "The CSR MUST indicate the exact same set of requested identifiers as the initial
    newOrder request"; otherwise badCSR (or malformed for an unusable request)."""
    a, b = unique(), unique()
    order = ready_order(target, client, a, b)
    payload = {
        "missing-name": {"csr": b64(csr_der([a]))},
        "extra-name": {"csr": b64(csr_der([a, b, unique()]))},
        "not-der": {"csr": b64(b"not a csr")},
        "no-csr": {},
    }[case]
    doc = problem(client.post(order["finalize"], payload), status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("badCSR", "malformed")


def test_finalize_valid_order_again_is_refused(target, client):
    """§7.4 / §7.1.6: a "valid" order cannot be finalized again (orderNotReady)."""
    name = unique()
    order, _ = issue(target, client, name)
    response = client.post(order["finalize"], {"csr": b64(csr_der([name]))})
    problem(response, "orderNotReady", 403)


def test_order_of_another_account_is_hidden(target, client):
    """§7.4 / §6.2: an order belongs to its account; another account cannot read it."""
    order = new_order(client, unique())
    other = account(target)
    response = other.post(order["url"])
    assert response.status_code in (403, 404)
    problem(response)
