"""RFC 8555 §6.2–§6.4: request authentication, with hand-built JWS wrong byte by byte."""

from __future__ import annotations

import base64
import json

import pytest
from cptest.conf_acme import account, problem, raw_client
from cptest.jwsclient import b64, flattened
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


@pytest.fixture(scope="module")
def client(target):
    return account(target)


def order_payload(name="jws.example.com"):
    return {"identifiers": [{"type": "dns", "value": name}]}


def send(client, url, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post_raw(url, data)


def test_flattened_serialisation_is_accepted(client):
    """§6.2: "ACME servers MUST accept JWS objects in the flattened JSON serialization"."""
    url = client.directory["newOrder"]
    body = flattened(
        client.key,
        {"kid": client.kid, "nonce": client.nonce(), "url": url},
        json.dumps(order_payload()).encode(),
    )
    assert send(client, url, body).status_code == 201


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/jose"])
def test_wrong_content_type_is_rejected(client, ctype):
    """§6.2: "the client MUST use the application/jose+json media type"; the server answers
    415 (Unsupported Media Type) to anything else."""
    url = client.directory["newOrder"]
    data = json.dumps(client.body(url, order_payload())).encode()
    response = client.post_raw(url, data, content_type=ctype)
    problem(response, status=415)


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_padded_base64_is_malformed(client, member):
    """§6.1 / RFC 7515 §2: JWS members are base64url "with all trailing '=' characters
    omitted"; a padded member is not valid base64url and the request is malformed."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    body[member] += "=" * (-len(body[member]) % 4 or 2)
    problem(send(client, url, body), "malformed", 400)


def test_standard_base64_alphabet_is_malformed(client):
    """RFC 7515 §2: base64url, not the standard alphabet ('+', '/')."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    raw = base64.urlsafe_b64decode(body["signature"] + "==")
    std = base64.b64encode(raw).decode().rstrip("=")
    if "+" not in std and "/" not in std:
        std = std[:-1] + "/"
    body["signature"] = std
    problem(send(client, url, body), "malformed", 400)


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_duplicate_members_are_malformed(client, member):
    """RFC 7515 §5.2 / RFC 7159: "Servers MUST reject" JSON with duplicate member names, as
    JWS requires; a body with a member twice is malformed."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    raw = json.dumps(body)[:-1] + f', "{member}": "{body[member]}"' + "}"
    problem(send(client, url, raw.encode()), "malformed", 400)


def test_duplicate_protected_header_parameters_are_malformed(client):
    """RFC 7515 §4: "Header Parameter names within the JOSE Header MUST be unique"."""
    url = client.directory["newOrder"]
    nonce = client.nonce()
    members = f'"kid": "{client.kid}", "nonce": "{nonce}", "url": "{url}", "url": "{url}"'
    header = ('{"alg": "ES256", ' + members + "}").encode()
    protected, payload = b64(header), b64(json.dumps(order_payload()).encode())
    from cptest.jwsclient import sign

    sig = sign(client.key, "ES256", f"{protected}.{payload}".encode())
    body = {"protected": protected, "payload": payload, "signature": b64(sig)}
    problem(send(client, url, body), "malformed", 400)


def test_unprotected_header_is_malformed(client):
    """§6.2: "The JWS Unprotected Header [RFC7515] MUST NOT be used"."""
    url = client.directory["newOrder"]
    body = {**client.body(url, order_payload()), "header": {"kid": client.kid}}
    problem(send(client, url, body), "malformed", 400)


def test_general_serialisation_is_malformed(client):
    """§6.2: "The JWS MUST NOT have multiple signatures" — the general serialisation with its
    "signatures" array is refused."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    general = {
        "payload": body["payload"],
        "signatures": [{"protected": body["protected"], "signature": body["signature"]}],
    }
    problem(send(client, url, general), "malformed", 400)


def test_compact_serialisation_is_malformed(client):
    """§6.2: flattened JSON only; a compact JWS is not a JSON object and is malformed."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    compact = f"{body['protected']}.{body['payload']}.{body['signature']}".encode()
    problem(send(client, url, compact), "malformed", 400)


def test_both_jwk_and_kid_is_malformed(client):
    """§6.2: "The "jwk" and "kid" fields are mutually exclusive. Servers MUST reject requests
    that contain both"."""
    response = client.post(client.directory["newOrder"], order_payload(), extra={"jwk": client.jwk})
    problem(response, "malformed", 400)


def test_neither_jwk_nor_kid_is_malformed(client):
    """§6.2: the protected header MUST contain "jwk" or "kid"."""
    response = client.post(client.directory["newOrder"], order_payload(), extra={"kid": None})
    problem(response, "malformed", 400)


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512", "ES999", "RS1", "foo"])
def test_unsupported_alg_is_bad_signature_algorithm(client, alg):
    """§6.2: "it MUST NOT be "none"... MUST NOT be a MAC-based algorithm"; "If the client sends
    a JWS signed with an algorithm that the server does not support, then the server MUST
    return an error with status code 400 (Bad Request) and type badSignatureAlgorithm"."""
    url = client.directory["newOrder"]
    protected = {"alg": alg, "kid": client.kid, "nonce": client.nonce(), "url": url}
    body = {
        "protected": b64(json.dumps(protected).encode()),
        "payload": b64(json.dumps(order_payload()).encode()),
        "signature": b64(b"x" * 64),
    }
    problem(send(client, url, body), "badSignatureAlgorithm", 400)


def test_bad_signature_algorithm_lists_algorithms(client):
    """§6.2: "The problem document returned with the error MUST include an "algorithms" field
    with an array of supported "alg" values"."""
    url = client.directory["newOrder"]
    protected = {"alg": "HS256", "kid": client.kid, "nonce": client.nonce(), "url": url}
    body = {
        "protected": b64(json.dumps(protected).encode()),
        "payload": b64(b"{}"),
        "signature": b64(b"x" * 32),
    }
    doc = problem(send(client, url, body), "badSignatureAlgorithm", 400)
    assert "ES256" in doc["algorithms"]


def test_alg_that_does_not_fit_the_key_is_refused(client):
    """§6.2 / RFC 7518: an "alg" that does not match the key type cannot verify."""
    response = client.post(client.directory["newOrder"], order_payload(), alg="RS256")
    doc = problem(response, status=400)
    assert doc["type"].rsplit(":", 1)[1] in ("badSignatureAlgorithm", "malformed")


@pytest.mark.parametrize("byte", [0, 5, 40, -1])
def test_bad_signature_is_refused(client, byte):
    """§6.2: the server MUST verify the JWS; a flipped bit in the signature is refused."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    sig = bytearray(base64.urlsafe_b64decode(body["signature"] + "=="))
    sig[byte] ^= 0x01
    body["signature"] = b64(bytes(sig))
    response = send(client, url, body)
    assert problem(response, status=400)["type"].endswith(("malformed", "unauthorized"))


def test_payload_changed_after_signing_is_refused(client):
    """§6.2: the signature covers the payload; a different payload does not verify."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload("a.example.com"))
    body["payload"] = b64(json.dumps(order_payload("b.example.com")).encode())
    problem(send(client, url, body), status=400)


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param("newAccount", id="other-resource"),
        pytest.param("query", id="query-string"),
        pytest.param("slash", id="trailing-slash"),
        pytest.param("missing", id="missing"),
    ],
)
def test_url_mismatch_is_unauthorized(client, wrong):
    """§6.4: "The "url" header parameter MUST be set"; "the server MUST reject the request as
    unauthorized" if the URL does not match the request target."""
    url = client.directory["newOrder"]
    value = {
        "newAccount": client.directory["newAccount"],
        "query": url + "?x=1",
        "slash": url + "/",
        "missing": None,
    }[wrong]
    response = client.post(url, order_payload(), extra={"url": value})
    doc = problem(response, status=400 if wrong == "missing" else 403)
    if wrong != "missing":
        assert doc["type"].endswith("unauthorized")


def test_unknown_kid_is_account_does_not_exist(client):
    """§6.2 / §6.7: a "kid" naming no account: "accountDoesNotExist"."""
    response = client.post(
        client.directory["newOrder"], order_payload(), extra={"kid": client.kid + "0"}
    )
    problem(response, "accountDoesNotExist", 400)


def test_new_account_signed_with_kid_is_malformed(client):
    """§6.2: "For newAccount requests, and for revokeCert requests authenticated by a
    certificate key, there MUST be a "jwk" field"."""
    response = client.post(client.directory["newAccount"], {}, use_jwk=False)
    problem(response, "malformed", 400)


def test_new_order_signed_with_jwk_is_malformed(client):
    """§6.2: "For all other requests, the request is signed using an existing account, and
    there MUST be a "kid" field"."""
    response = client.post(client.directory["newOrder"], order_payload(), use_jwk=True)
    problem(response, "malformed", 400)


@pytest.mark.parametrize(
    "junk",
    [b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"protected": 1}', b'"str"', b"{}"],
    ids=["empty", "null", "array", "truncated", "not-utf8", "wrong-type", "string", "empty-obj"],
)
def test_junk_bodies_are_malformed(client, junk):
    """§6.2: a request body that is not a flattened JWS is malformed."""
    problem(send(client, client.directory["newOrder"], junk), "malformed", 400)


def test_protected_header_not_json_is_malformed(client):
    """§6.2: the protected header must be a JSON object."""
    url = client.directory["newOrder"]
    body = client.body(url, order_payload())
    body["protected"] = b64(b"not json")
    problem(send(client, url, body), "malformed", 400)


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="ES256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="ES384"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="RS256"),
    ],
)
def test_supported_algorithms_register(target, make_key):
    """§6.2: "An ACME server MUST implement the "ES256" signature algorithm [RFC7518] and SHOULD
    implement the "EdDSA" ... algorithm"; RS256 is what most clients send."""
    client = account(target, key=make_key())
    assert client.new_order("alg.example.com").status_code == 201


def test_ed25519_is_supported(target):
    """§6.2: the server "SHOULD implement the "EdDSA" signature algorithm using the "Ed25519"
    variant"."""
    client = account(target, key=ed25519.Ed25519PrivateKey.generate())
    assert client.new_order("ed.example.com").status_code == 201


def test_get_of_account_resource_is_refused(client):
    """§6.3: resources other than directory, newNonce (and certificate) require POST-as-GET;
    a plain GET of an account URL is refused with 405."""
    response = client.get(client.kid)
    assert response.status_code in (404, 405)


def test_post_as_get_with_empty_payload(client):
    """§6.3: POST-as-GET: "the "payload" field of the JWS object MUST be present and set to the
    empty string ("")"; the server answers it like a GET."""
    response = client.new_order("pag.example.com")
    order_url = response.headers["Location"]
    assert client.post(order_url).status_code == 200


def test_raw_client_helper_reaches_target(target):
    """Sanity: the hand-built client sees the target's directory."""
    assert "newNonce" in raw_client(target).directory
