"""The inventory report parser: every member checked, every refusal a malformed problem naming
the member, and the values as the server stores them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from certplane.server.errors import AcmeProblem, ProblemType
from certplane.server.ra.inventory_report import (
    MAX_EVENTS,
    MAX_ITEMS,
    MAX_LOCATIONS,
    MAX_SANS,
    parse_report,
)

FP = "ab" * 32


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "host": "Web1.Example.com",
        "items": [
            {
                "fingerprint": FP.upper(),
                "subject": "CN=www.example.com",
                "sans": ["WWW.example.com", "192.0.2.1"],
                "issuer": "CN=Example CA",
                "not_before": "2030-01-01T00:00:00Z",
                "not_after": "2030-04-01T00:00:00+02:00",
                "key_type": "rsa-2048",
                "signature_algorithm": "sha256WithRSAEncryption",
                "managed": True,
                "locations": [
                    {"kind": "file", "path": "/etc/ssl/www.pem", "index": 0},
                    {
                        "kind": "config",
                        "config_file": "/etc/nginx/nginx.conf",
                        "line": 12,
                        "directive": "ssl_certificate",
                        "path": "/etc/ssl/www.pem",
                        "server_names": ["www.example.com"],
                        "served": None,
                    },
                    {"kind": "endpoint", "host": "::1", "port": 443, "sni": "www.example.com"},
                ],
            }
        ],
        "events": [
            {
                "type": "deployed",
                "certificate": FP,
                "name": "www",
                "detail": "",
                "at": "2030-01-02T03:04:05Z",
            }
        ],
    }
    report.update(overrides)
    return report


def test_a_report_is_parsed_and_normalised():
    report = parse_report(_report())
    assert report.host == "web1.example.com"
    (item,) = report.items
    assert item.fingerprint == FP and item.sans == ("www.example.com", "192.0.2.1")
    assert item.not_after == datetime(2030, 3, 31, 22, tzinfo=UTC)
    assert item.key_bits == 2048 and item.managed
    file, config, endpoint = item.locations
    assert (file.served, config.served, endpoint.served) == (False, False, True)
    assert item.served
    assert endpoint.where == "[::1]:443 sni=www.example.com"
    assert config.where == "/etc/nginx/nginx.conf:12"
    assert endpoint.to_json() == {
        "kind": "endpoint", "host": "::1", "port": 443, "sni": "www.example.com", "served": True,
    }  # fmt: skip
    (event,) = report.events
    assert event.type == "deployed" and event.certificate == FP
    assert event.at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_events_may_be_left_out_and_lists_may_be_empty():
    report = parse_report({"host": "h", "items": []})
    assert report.items == () and report.events == ()


@pytest.mark.parametrize(
    ("key_type", "bits"),
    [("ec-p256", 256), ("ec-p384", 384), ("dsa-1024", 1024), ("ed25519", None),
     ("ec-secp256k1", None), ("unknown", None)],
)  # fmt: skip
def test_key_bits_come_from_the_key_type(key_type, bits):
    doc = _report()
    doc["items"][0]["key_type"] = key_type
    assert parse_report(doc).items[0].key_bits == bits


def _item_with(**changes: Any) -> dict[str, Any]:
    doc = _report()
    doc["items"][0].update(changes)
    return doc


def _location(location: Any) -> dict[str, Any]:
    return _item_with(locations=[location])


def _event_with(**changes: Any) -> dict[str, Any]:
    doc = _report()
    doc["events"][0].update(changes)
    return doc


def _without(doc: dict[str, Any], *path: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return doc


BAD = {
    "unknown top-level member": ({**_report(), "extra": 1}, "unknown member 'extra'"),
    "no host": (_without(_report(), "host"), "host is required"),
    "no items": (_without(_report(), "items"), "items is required"),
    "host not a string": (_report(host=1), "host must match"),
    "host with a space": (_report(host="a b"), "host must match"),
    "host empty": (_report(host=""), "host must match"),
    "items not a list": (_report(items={}), "items must be an array"),
    "too many items": (_report(items=[{}] * (MAX_ITEMS + 1)), "at most 2000"),
    "item not an object": (_report(items=[1]), "items[0] must be an object"),
    "unknown item member": (_item_with(colour="red"), "unknown member 'colour'"),
    "item missing managed": (_without(_report(), "items", 0, "managed"), "managed is required"),
    "fingerprint short": (_item_with(fingerprint="ab"), "items[0].fingerprint"),
    "fingerprint not hex": (_item_with(fingerprint="zz" * 32), "SHA-256 fingerprint"),
    "subject not a string": (_item_with(subject=None), "subject must be a string"),
    "subject too long": (_item_with(subject="x" * 1025), "0 to 1024"),
    "subject with NUL": (_item_with(subject="a\x00b"), "NUL characters"),
    "subject with a lone surrogate": (_item_with(subject="a\ud800"), "NUL characters"),
    "sans not a list": (_item_with(sans="www"), "sans must be an array"),
    "too many sans": (_item_with(sans=["a"] * (MAX_SANS + 1)), "at most 100"),
    "san empty": (_item_with(sans=[""]), "sans[0] must be 1 to 253"),
    "san not a string": (_item_with(sans=[1]), "sans[0] must be a string"),
    "not_after naive": (_item_with(not_after="2030-01-01T00:00:00"), "with an offset"),
    "not_after junk": (_item_with(not_after="soon"), "RFC 3339"),
    "not_after a number": (_item_with(not_after=1), "RFC 3339"),
    "not_after before not_before": (
        _item_with(not_after="2029-01-01T00:00:00Z"),
        "not_after is before not_before",
    ),
    "key type upper case": (_item_with(key_type="RSA-2048"), "key_type must match"),
    "signature algorithm with spaces": (
        _item_with(signature_algorithm="Unknown OID"),
        "signature_algorithm must match",
    ),
    "managed a string": (_item_with(managed="yes"), "managed must be a boolean"),
    "too many locations": (
        _item_with(locations=[{"kind": "file", "path": "/x"}] * (MAX_LOCATIONS + 1)),
        "at most 32",
    ),
    "location kind unknown": (_location({"kind": "socket"}), "kind must be one of"),
    "location not an object": (_location(1), "locations[0] must be an object"),
    "file without path": (_location({"kind": "file"}), "path is required"),
    "file served": (_location({"kind": "file", "path": "/x", "served": True}), "unknown member"),
    "file index negative": (_location({"kind": "file", "path": "/x", "index": -1}), "index"),
    "file index a bool": (_location({"kind": "file", "path": "/x", "index": True}), "index"),
    "config without line": (_location({"kind": "config", "config_file": "/c"}), "line is"),
    "config line zero": (_location({"kind": "config", "config_file": "/c", "line": 0}), "line"),
    "config index without path": (
        _location({"kind": "config", "config_file": "/c", "line": 1, "index": 0}),
        "index needs",
    ),
    "config served a string": (
        _location({"kind": "config", "config_file": "/c", "line": 1, "served": "y"}),
        "served",
    ),
    "endpoint without port": (_location({"kind": "endpoint", "host": "h"}), "port is required"),
    "endpoint port 0": (_location({"kind": "endpoint", "host": "h", "port": 0}), "port"),
    "endpoint port 65536": (_location({"kind": "endpoint", "host": "h", "port": 65536}), "port"),
    "endpoint port a float": (_location({"kind": "endpoint", "host": "h", "port": 443.0}), "port"),
    "a fingerprint twice": (_report(items=_report()["items"] * 2), "a fingerprint is listed twice"),
    "events not a list": (_report(events=None), "events must be an array"),
    "too many events": (_report(events=[{}] * (MAX_EVENTS + 1)), "at most 200"),
    "event type unknown": (_event_with(type="issued"), "type must be one of"),
    "event without at": (_without(_report(), "events", 0, "at"), "at is required"),
    "event certificate junk": (_event_with(certificate="x"), "SHA-256 fingerprint"),
    "event name with a slash": (_event_with(name="a/b"), "name must match"),
    "event detail too long": (_event_with(detail="x" * 2049), "0 to 2048"),
    "event at in year 0": (_event_with(at="0000-01-01T00:00:00Z"), "RFC 3339"),
    "event at out of range": (_event_with(at="0001-01-01T00:00:00+01:00"), "RFC 3339"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_malformed_reports_name_the_member(case):
    doc, message = BAD[case]
    with pytest.raises(AcmeProblem) as refused:
        parse_report(doc)
    assert refused.value.type is ProblemType.MALFORMED
    assert message in refused.value.detail
