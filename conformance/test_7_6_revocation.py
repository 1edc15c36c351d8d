"""RFC 8555 §7.6: certificate revocation."""

from __future__ import annotations

import pytest
from cptest.conf_acme import account, issue, need_lab, problem, unique
from cptest.jwsclient import b64
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@pytest.fixture(scope="module")
def client(target):
    need_lab(target)
    return account(target)


def cert_der(chain: str) -> str:
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    return b64(leaf.public_bytes(Encoding.DER))


def test_revoke_by_account(target, client):
    """§7.6: "If the revocation succeeds, the server responds with status code 200 (OK)"."""
    _, chain = issue(target, client, unique())
    response = client.post(client.directory["revokeCert"], {"certificate": cert_der(chain)})
    assert response.status_code == 200


def test_revoke_twice_is_already_revoked(target, client):
    """§7.6 / §6.7: "alreadyRevoked: The request specified a certificate to be revoked that has
    already been revoked"."""
    _, chain = issue(target, client, unique())
    url = client.directory["revokeCert"]
    assert client.post(url, {"certificate": cert_der(chain)}).status_code == 200
    problem(client.post(url, {"certificate": cert_der(chain)}), "alreadyRevoked", 400)


@pytest.mark.parametrize("reason", [7, 11, -1, 99])
def test_bad_revocation_reason(target, client, reason):
    """§7.6: "reason (optional, int): One of the revocation reasonCodes defined in Section 5.3.1
    of [RFC5280]"; an unusable one is "badRevocationReason"."""
    _, chain = issue(target, client, unique())
    response = client.post(
        client.directory["revokeCert"], {"certificate": cert_der(chain), "reason": reason}
    )
    problem(response, "badRevocationReason", 400)


def test_revoke_by_unrelated_account_is_unauthorized(target, client):
    """§7.6: the server MUST consider a revocation request valid only if signed by the issuing
    account, an account authorized for all identifiers, or the certificate key; else
    "unauthorized" (403)."""
    _, chain = issue(target, client, unique())
    other = account(target)
    response = other.post(other.directory["revokeCert"], {"certificate": cert_der(chain)})
    problem(response, "unauthorized", 403)


def test_revoke_unknown_certificate(target, client):
    """§7.6: a certificate the server did not issue cannot be revoked (an error, never 5xx)."""
    _, chain = issue(target, client, unique())
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    der = bytearray(leaf.public_bytes(Encoding.DER))
    der[-5] ^= 0xFF
    response = client.post(client.directory["revokeCert"], {"certificate": b64(bytes(der))})
    problem(response)


def test_revoke_without_certificate_is_malformed(client):
    """§7.6: "certificate (required, string)"."""
    problem(client.post(client.directory["revokeCert"], {}), "malformed", 400)
