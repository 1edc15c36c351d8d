"""RFC 8555 §7.3.4 External Account Binding, against a directory that requires it.

Skipped for targets that cannot hand out EAB keys for such a directory.
"""

from __future__ import annotations

import pytest
from cptest.conf_acme import problem, raw_client
from cptest.jwsclient import b64, eab_binding


@pytest.fixture
def eab_target(target, second):
    if not target.second_needs_eab or target.new_eab() is None:
        pytest.skip(f"{target.name} hands out no EAB keys for a directory that requires them")
    return target, second


def _new_account(target, directory, binding):
    client = raw_client(target, directory)
    url = client.directory["newAccount"]
    payload = {"termsOfServiceAgreed": True}
    if binding is not None:
        payload["externalAccountBinding"] = binding(client, url)
    return client, client.post(url, payload, use_jwk=True)


def _binding(eab, alg="HS256", url_suffix="", other_key=None, hmac_key=None):
    def make(client, url):
        jwk = other_key.jwk if other_key is not None else client.jwk
        return eab_binding(eab.kid, hmac_key or eab.hmac_key, jwk, url + url_suffix, alg=alg)

    return make


def test_directory_advertises_external_account_required(eab_target):
    """§7.1.1: "externalAccountRequired": the server requires all newAccount requests to
    include an "externalAccountBinding" field."""
    target, directory = eab_target
    assert raw_client(target, directory).directory["meta"]["externalAccountRequired"] is True


def test_missing_binding_is_external_account_required(eab_target):
    """§7.3.4: "If the CA requires that newAccount requests contain an
    'externalAccountBinding' field, then it MUST return an error of type
    'externalAccountRequired'"."""
    target, directory = eab_target
    _, response = _new_account(target, directory, None)
    problem(response, "externalAccountRequired", 403)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_binding_creates_the_account(eab_target, alg):
    """§7.3.4: the server verifies the MAC with the key identified by "kid" and creates the
    account (201, with a Location)."""
    target, directory = eab_target
    _, response = _new_account(target, directory, _binding(target.new_eab(), alg=alg))
    assert response.status_code == 201, response.text
    assert response.headers["Location"]


def test_wrong_mac_is_refused(eab_target):
    """§7.3.4: "Verify that the MAC on the JWS verifies using that MAC key"."""
    target, directory = eab_target
    wrong = b64(b"not-the-key-not-the-key-not-the-k")
    _, response = _new_account(target, directory, _binding(target.new_eab(), hmac_key=wrong))
    problem(response, "unauthorized", 403)


def test_binding_url_must_equal_the_request_url(eab_target):
    """§7.3.4: the "url" header of the binding "MUST be set to the same value as the outer
    JWS"."""
    target, directory = eab_target
    _, response = _new_account(target, directory, _binding(target.new_eab(), url_suffix="x"))
    problem(response, "malformed", 400)


def test_binding_payload_must_be_the_account_key(eab_target):
    """§7.3.4: "Verify that the payload of the JWS represents the same key as was used to
    verify the outer JWS"."""
    target, directory = eab_target
    other = raw_client(target, directory)
    _, response = _new_account(target, directory, _binding(target.new_eab(), other_key=other))
    # The RFC names no error type for a failed check; malformed and badPublicKey both fit.
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[-1] in {"malformed", "badPublicKey"}, doc


def test_a_binding_key_is_used_once(eab_target):
    """§7.3.4: the CA binds the external account key to the new account; certplane's keys are
    single use, so a second account with the same key is refused."""
    target, directory = eab_target
    eab = target.new_eab()
    _, first = _new_account(target, directory, _binding(eab))
    assert first.status_code == 201
    _, second = _new_account(target, directory, _binding(eab))
    problem(second, "unauthorized", 403)


def test_unsupported_mac_algorithm_is_refused(eab_target):
    """§7.3.4: the binding's "alg" MUST indicate a MAC-based algorithm."""
    target, directory = eab_target
    eab = target.new_eab()

    def not_a_mac(client, url):
        binding = eab_binding(eab.kid, eab.hmac_key, client.jwk, url)
        binding["protected"] = b64(f'{{"alg":"ES256","kid":"{eab.kid}","url":"{url}"}}'.encode())
        return binding

    _, response = _new_account(target, directory, not_a_mac)
    assert response.status_code in (400, 403)
    problem(response)
