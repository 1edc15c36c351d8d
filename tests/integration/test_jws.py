"""Request authentication (RFC 8555 §6.2–§6.5) with hand-built JWS: each byte wrong on purpose."""

from __future__ import annotations

import base64
import json

import pytest
from cptest.jwsclient import ERR, RawClient, b64, flattened, problem
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _type(response) -> str:
    return problem(response)["type"].removeprefix(ERR)


@pytest.fixture
def client(register) -> RawClient:
    return register("open")


def test_wrong_content_type_is_415(client):
    body = json.dumps(client.body(client.directory["newOrder"], {"identifiers": []})).encode()
    response = client.post_raw(client.directory["newOrder"], body, content_type="application/json")
    assert response.status_code == 415
    assert _type(response) == "malformed"


def test_padded_base64_is_malformed(client):
    body = client.body(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example.com"}]}
    )
    body["protected"] += "=" * (-len(body["protected"]) % 4 or 4)
    response = client.post_raw(client.directory["newOrder"], json.dumps(body).encode())
    assert _type(response) == "malformed"


def test_standard_base64_alphabet_is_malformed(client):
    url = client.directory["newOrder"]
    body = client.body(url, {"identifiers": [{"type": "dns", "value": "a.example.com"}]})
    raw = base64.urlsafe_b64decode(body["signature"] + "==")
    body["signature"] = base64.b64encode(raw).decode().rstrip("=").replace("-", "+")
    if "+" not in body["signature"] and "/" not in body["signature"]:
        body["signature"] = body["signature"][:-1] + "/"
    assert _type(client.post_raw(url, json.dumps(body).encode())) == "malformed"


def test_duplicate_members_are_malformed(client):
    url = client.directory["newOrder"]
    body = client.body(url, None)
    raw = json.dumps(body)[:-1] + f', "payload": "{body["payload"]}"' + "}"
    assert _type(client.post_raw(url, raw.encode())) == "malformed"


def test_unprotected_header_is_malformed(client):
    url = client.directory["newOrder"]
    body = {**client.body(url, None), "header": {"kid": client.kid}}
    assert _type(client.post_raw(url, json.dumps(body).encode())) == "malformed"


def test_general_serialisation_is_malformed(client):
    url = client.directory["newOrder"]
    body = client.body(url, None)
    general = {
        "payload": body["payload"],
        "signatures": [{"protected": body["protected"], "signature": body["signature"]}],
    }
    assert _type(client.post_raw(url, json.dumps(general).encode())) == "malformed"


def test_both_jwk_and_kid_is_malformed(client):
    url = client.directory["newOrder"]
    response = client.post(url, {"identifiers": []}, extra={"jwk": client.jwk})
    assert _type(response) == "malformed"


def test_alg_none_and_hmac_are_bad_signature_algorithm(client):
    url = client.directory["newOrder"]
    for alg in ("none", "HS256", "PS256", "ES999"):
        protected = {"alg": alg, "kid": client.kid, "nonce": client.nonce(), "url": url}
        body = {
            "protected": b64(json.dumps(protected).encode()),
            "payload": b64(b"{}"),
            "signature": b64(b"x" * 64),
        }
        response = client.post_raw(url, json.dumps(body).encode())
        doc = problem(response)
        assert doc["type"] == ERR + "badSignatureAlgorithm", alg
        assert set(doc["algorithms"]) >= {"ES256", "RS256", "EdDSA"}


def test_alg_that_does_not_fit_the_key(client):
    response = client.post(client.directory["newOrder"], {"identifiers": []}, alg="ES384")
    assert _type(response) in ("badSignatureAlgorithm", "malformed")


def test_bad_signature_is_malformed(client):
    url = client.directory["newOrder"]
    body = client.body(url, {"identifiers": [{"type": "dns", "value": "a.example.com"}]})
    sig = bytearray(base64.urlsafe_b64decode(body["signature"] + "=="))
    sig[5] ^= 0x01
    body["signature"] = b64(bytes(sig))
    response = client.post_raw(url, json.dumps(body).encode())
    assert problem(response)["type"] == ERR + "malformed"


def test_url_mismatch_is_unauthorized(client):
    response = client.post(
        client.directory["newOrder"],
        {"identifiers": []},
        extra={"url": client.directory["newAccount"]},
    )
    assert response.status_code == 403
    assert _type(response) == "unauthorized"


def test_replayed_nonce_is_bad_nonce_with_a_fresh_nonce(client):
    url = client.directory["newOrder"]
    payload = {"identifiers": [{"type": "dns", "value": "replay.example.com"}]}
    body = json.dumps(client.body(url, payload)).encode()
    assert client.post_raw(url, body).status_code == 201
    replay = client.post_raw(url, body)
    assert _type(replay) == "badNonce"
    assert replay.headers["Replay-Nonce"]


def test_missing_and_forged_nonces(client):
    url = client.directory["newOrder"]
    assert _type(client.post(url, {"identifiers": []}, extra={"nonce": None})) == "badNonce"
    assert (
        _type(client.post(url, {"identifiers": []}, extra={"nonce": b64(b"x" * 36)})) == "badNonce"
    )


def test_nonce_of_another_tenant_is_bad_nonce(client, platform):
    other = RawClient(platform.directory("alpha"))
    foreign_nonce = other.nonce()
    response = client.post(
        client.directory["newOrder"], {"identifiers": []}, extra={"nonce": foreign_nonce}
    )
    assert _type(response) == "badNonce"


def test_unknown_kid_is_account_does_not_exist(client):
    url = client.directory["newOrder"]
    response = client.post(url, {"identifiers": []}, extra={"kid": client.kid + "x"})
    assert _type(response) == "accountDoesNotExist"


def test_new_account_signed_with_kid_is_malformed(client):
    response = client.post(client.directory["newAccount"], {}, use_jwk=False)
    assert _type(response) == "malformed"


def test_new_order_signed_with_jwk_is_malformed(client):
    response = client.post(client.directory["newOrder"], {"identifiers": []}, use_jwk=True)
    assert _type(response) == "malformed"


def test_oversized_body_is_413(client):
    url = client.directory["newOrder"]
    response = client.post_raw(url, b"{" + b" " * 70_000 + b"}")
    assert response.status_code == 413
    assert problem(response)["type"] == ERR + "malformed"


@pytest.mark.parametrize("junk", [b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"protected": 1}'])
def test_junk_bodies_are_malformed(client, junk):
    assert _type(client.post_raw(client.directory["newOrder"], junk)) == "malformed"


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(65537, 2048),
    ],
)
def test_every_supported_algorithm_registers(platform, server, make_key):
    client = RawClient(platform.directory("open"), key=make_key())
    assert client.new_account().status_code == 201


def test_ed25519_account_key_registers(platform, server):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    client = RawClient(platform.directory("open"), key=ed25519.Ed25519PrivateKey.generate())
    assert client.new_account().status_code == 201
    assert client.new_order("ed.example.com").status_code == 201


def test_flattened_helper_signs_what_the_server_verifies(client):
    url = client.directory["newOrder"]
    body = flattened(
        client.key,
        {"kid": client.kid, "nonce": client.nonce(), "url": url},
        json.dumps({"identifiers": [{"type": "dns", "value": "ok.example.com"}]}).encode(),
    )
    assert client.post_raw(url, json.dumps(body).encode()).status_code == 201
