"""External account binding (RFC 8555 §7.3.4), as certbot's ``acme`` library produces it."""

from __future__ import annotations

import base64
import json
from typing import Any

import josepy as jose
import pytest
from acme import jws as acme_jws
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.wfe.jose import (
    ParsedEab,
    parse_eab,
    verify_eab,
    verify_eab_mac,
)

NEW_ACCOUNT = "https://acme.example/acme/t1/new-account"
KID = "kid-7f3a"
HMAC_KEY = b"0123456789abcdef0123456789abcdef"
ACCOUNT = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
OUTER_JWK: dict[str, Any] = ACCOUNT.public_key().to_partial_json()
OTHER = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())).public_key()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_eab(alg: str = "HS256", hmac_key: bytes = HMAC_KEY) -> dict[str, Any]:
    """Exactly what certbot sends in newAccount's externalAccountBinding."""
    directory = {"newAccount": NEW_ACCOUNT}
    return messages.ExternalAccountBinding.from_data(
        ACCOUNT.public_key(),
        KID,
        b64(hmac_key),
        directory,
        hmac_alg=alg,  # type: ignore[arg-type]
    )


def signed_eab(
    payload: bytes | None = None,
    *,
    alg: jose.JWASignature = jose.HS256,
    nonce: bytes | None = None,
    url: str = NEW_ACCOUNT,
    kid: str | None = KID,
) -> dict[str, Any]:
    """An EAB with one thing changed, still correctly MACed."""
    if payload is None:
        payload = json.dumps(OUTER_JWK).encode()
    jws = acme_jws.JWS.sign(payload, jose.JWKOct(key=HMAC_KEY), alg, nonce, url, kid)
    return jws.to_partial_json()


def parse(eab: object, url: str = NEW_ACCOUNT, outer: dict[str, Any] = OUTER_JWK) -> ParsedEab:
    return parse_eab(eab, outer_url=url, outer_jwk=outer)


def refused(eab: object, detail_part: str, **kwargs: Any) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as excinfo:
        parse(eab, **kwargs)
    assert excinfo.value.type is ProblemType.MALFORMED
    assert detail_part in excinfo.value.detail
    return excinfo.value


def lookup(kid: str) -> bytes | None:
    return HMAC_KEY if kid == KID else None


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_certbot_eab_verifies(alg: str):
    parsed = parse(client_eab(alg))
    assert (parsed.kid, parsed.alg) == (KID, alg)
    assert verify_eab_mac(parsed, HMAC_KEY)
    assert verify_eab(OUTER_JWK, client_eab(alg), lookup, outer_url=NEW_ACCOUNT) == KID


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_wrong_mac_key(alg: str):
    parsed = parse(client_eab(alg))
    assert not verify_eab_mac(parsed, HMAC_KEY[:-1] + b"!")
    assert not verify_eab_mac(parsed, b"")


def test_truncated_mac():
    eab = client_eab()
    eab["signature"] = eab["signature"][:20]
    assert not verify_eab_mac(parse(eab), HMAC_KEY)


@pytest.mark.parametrize("key", [b"wrong key", None])
def test_verify_eab_is_unauthorized_with_one_detail(key: bytes | None):
    with pytest.raises(AcmeProblem) as excinfo:
        verify_eab(OUTER_JWK, client_eab(), lambda _kid: key, outer_url=NEW_ACCOUNT)
    assert excinfo.value.type is ProblemType.UNAUTHORIZED
    assert excinfo.value.detail == "external account binding could not be verified"


def test_nonce_must_be_absent():
    refused(signed_eab(nonce=b"nonce"), "must not contain a 'nonce'")


def test_url_must_be_the_outer_url():
    refused(signed_eab(url=NEW_ACCOUNT + "/"), "'url' must equal the request URL")
    refused(client_eab(), "'url' must equal the request URL", url="https://other.example/")


def test_kid_is_required():
    refused(signed_eab(kid=None), "needs a non-empty string 'kid'")
    refused(signed_eab(kid=""), "needs a non-empty string 'kid'")


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        (jose.RS256, None),
        (jose.ES256, None),
        ("none", None),
        ("HS1", None),
    ],
)
def test_unknown_alg_is_malformed(alg: Any, key: Any):
    eab = client_eab()
    protected = json.loads(base64.urlsafe_b64decode(eab["protected"] + "=="))
    protected["alg"] = alg if isinstance(alg, str) else alg.name
    eab["protected"] = b64(json.dumps(protected).encode())
    exc = refused(eab, "'alg' must be one of HS256, HS384, HS512")
    assert exc.algorithms is None


def test_payload_must_be_the_outer_key():
    other = json.dumps(OTHER.to_partial_json()).encode()
    refused(signed_eab(other), "payload must be the account key")
    refused(client_eab(), "payload must be the account key", outer=OTHER.to_partial_json())


def test_payload_must_repeat_the_outer_jwk_exactly():
    decorated = json.dumps({**OUTER_JWK, "use": "sig"}).encode()
    refused(signed_eab(decorated), "payload must repeat the outer 'jwk' exactly")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"", "payload must be the account key"),
        (b"[]", "payload must be a JSON object"),
        (b'{"kty": "EC", "kty": "EC"}', "duplicate member 'kty'"),
        (json.dumps({**OUTER_JWK, "d": "AQAB"}).encode(), "private key material in jwk"),
    ],
)
def test_bad_payloads(payload: bytes, detail: str):
    refused(signed_eab(payload), detail)


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (lambda e: e.update(header={"alg": "HS256"}), "externalAccountBinding has an unprotected"),
        (lambda e: e.pop("signature"), "externalAccountBinding lacks member(s) signature"),
        (lambda e: e.update(signature=e["signature"] + "="), "signature is not canonical"),
        (lambda e: e.update(protected=e["protected"] + "="), "protected header is not canonical"),
    ],
)
def test_eab_is_parsed_as_strictly_as_the_outer_jws(mutate, detail: str):
    eab = client_eab()
    mutate(eab)
    refused(eab, detail)


@pytest.mark.parametrize("eab", ["jws", None, [], True])
def test_eab_must_be_an_object(eab: object):
    refused(eab, "externalAccountBinding must be a JSON object")


def test_general_serialisation_is_refused():
    eab = client_eab()
    general = {
        "payload": eab["payload"],
        "signatures": [{"protected": eab["protected"], "signature": eab["signature"]}],
    }
    refused(general, "general JSON serialization")
