"""Malformed bodies and headers to every endpoint: always a problem document, never a 5xx."""

from __future__ import annotations

import json

import pytest
import requests
from cptest.jwsclient import PROBLEM, RawClient, b64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _endpoints(world: dict) -> list[str]:
    return [
        world[k]
        for k in (
            "newAccount",
            "newOrder",
            "revokeCert",
            "keyChange",
            "acct",
            "orders",
            "order",
            "finalize",
            "authz",
            "chall",
            "cert",
            "inventory",
        )
    ]


@pytest.fixture
def world(flow) -> dict:
    f = flow("open")
    order = f.order("fuzz.alpha.localhost")
    authz = f.client.post(order["authorizations"][0]).json()
    d = f.client.directory
    return {
        "client": f.client,
        "newAccount": d["newAccount"],
        "newOrder": d["newOrder"],
        "revokeCert": d["revokeCert"],
        "keyChange": d["keyChange"],
        "acct": f.client.kid,
        "orders": f.client.kid + "/orders",
        "order": order["url"],
        "finalize": order["finalize"],
        "authz": order["authorizations"][0],
        "chall": authz["challenges"][0]["url"],
        "cert": order["url"].replace("/order/", "/cert/"),
        "inventory": d["meta"]["certplaneInventory"],
    }


def _assert_problem(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith(PROBLEM), response.headers
        assert response.json()["status"] == response.status_code


RAW_BODIES = [
    b"",
    b"{}",
    b"[]",
    b"null",
    b"1",
    b'"x"',
    b"{" * 5000,
    b"\x00\xff" * 100,
    b'{"protected": "", "payload": "", "signature": ""}',
    b'{"protected": 1, "payload": [], "signature": {}}',
    b'{"protected": "eyJ9", "payload": "", "signature": "AA"}',
    json.dumps({"protected": b64(b"[]"), "payload": "", "signature": ""}).encode(),
    json.dumps({"protected": b64(b'{"alg": "ES256"}'), "payload": "", "signature": ""}).encode(),
    json.dumps(
        {
            "protected": b64(b'{"alg":"ES256","jwk":1,"nonce":"a","url":"u"}'),
            "payload": "",
            "signature": "",
        }
    ).encode(),
    json.dumps(
        {
            "protected": b64(b'{"alg":"ES256","kid":{},"nonce":"a","url":"u"}'),
            "payload": "",
            "signature": "",
        }
    ).encode(),
]


def test_raw_garbage_to_every_endpoint(world):
    client: RawClient = world["client"]
    for url in _endpoints(world):
        for body in RAW_BODIES:
            _assert_problem(client.post_raw(url, body))
        for content_type in ("text/plain", "application/json", "", "application/jose+json; x=1"):
            _assert_problem(client.post_raw(url, b"{}", content_type=content_type))
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            _assert_problem(client.session.request(method, url, timeout=30))


PAYLOADS = [
    [],
    1,
    "x",
    None,
    {"identifiers": None},
    {"identifiers": [None]},
    {"identifiers": [[]]},
    {"identifiers": [{"type": 1, "value": 2}]},
    {"identifiers": [{"type": "dns", "value": "x" * 500}]},
    {"identifiers": [{"type": "ip", "value": "fe80::1%eth0"}]},
    {"csr": 1},
    {"csr": "@@"},
    {"csr": b64(b"\x30\x03\x02\x01\x00")},
    {"certificate": None},
    {"certificate": 1},
    {"certificate": b64(b"\x30")},
    {"reason": "x"},
    {"status": 1},
    {"contact": "x"},
    {"contact": [None]},
    {"onlyReturnExisting": "y"},
    {"externalAccountBinding": 1},
    {"externalAccountBinding": {"protected": "", "payload": "", "signature": ""}},
    {"protected": 1, "payload": 2, "signature": 3},
    {"account": 1, "oldKey": 2},
    {"termsOfServiceAgreed": None},
    {"host": None, "items": None},
    {"host": "h", "items": [{"fingerprint": 1, "locations": [{"kind": "endpoint"}]}]},
    {"host": "h", "items": [], "events": [{"type": "failed", "at": "0000-00-00"}]},
    {"a" * 1000: "b"},
]


def test_signed_but_nonsensical_payloads_to_every_endpoint(world):
    client: RawClient = world["client"]
    for url in _endpoints(world):
        for payload in PAYLOADS:
            body = json.dumps(client.body(url, None)).encode()
            raw = json.dumps(payload).encode()
            signed = client.body(url, raw, use_jwk=url == world["newAccount"])
            _assert_problem(client.post_raw(url, json.dumps(signed).encode()))
            del body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=json_values, which=st.integers(min_value=0, max_value=11))
def test_generated_payloads_never_5xx(world, payload, which):
    client: RawClient = world["client"]
    url = _endpoints(world)[which]
    signed = client.body(url, json.dumps(payload).encode(), use_jwk=url == world["newAccount"])
    _assert_problem(client.post_raw(url, json.dumps(signed).encode()))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "jwk", "kid", "nonce", "url", "crit", "b64"]),
        json_values,
        max_size=6,
    )
)
def test_generated_protected_headers_never_5xx(world, header):
    client: RawClient = world["client"]
    url = world["newOrder"]
    body = {
        "protected": b64(json.dumps(header).encode()),
        "payload": b64(b"{}"),
        "signature": b64(b"\x01" * 64),
    }
    _assert_problem(client.post_raw(url, json.dumps(body).encode()))
