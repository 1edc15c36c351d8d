"""The agent's report pieces without a server: items from certificates, merging discovery's
items into the managed ones, the persisted event queue and what ``flush`` does with it."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certplane.agent.acme_flow import AcmeFailure
from certplane.agent.report import (
    MAX_EVENTS,
    InventoryReporter,
    ReportQueue,
    certificate_item,
    merge_items,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _pem(key, *, sans: list[x509.GeneralName] | None = None, algorithm=None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Host.Example")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=30))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, algorithm).public_bytes(Encoding.PEM)


def test_an_item_describes_the_certificate():
    key = ec.generate_private_key(ec.SECP384R1())
    sans = [x509.DNSName("WWW.example.com"), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]
    pem = _pem(key, sans=sans, algorithm=hashes.SHA384())
    location = {"kind": "file", "path": "/etc/ssl/x.pem"}
    item = certificate_item(pem, managed=False, locations=[location])
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert item == {
        "fingerprint": hashlib.sha256(der).hexdigest(),
        "subject": "CN=Host.Example",
        "sans": ["www.example.com", "192.0.2.7"],
        "issuer": "CN=Host.Example",
        "not_before": "2030-01-01T00:00:00Z",
        "not_after": "2030-01-31T00:00:00Z",
        "key_type": "ec-p384",
        "signature_algorithm": "ecdsa-with-SHA384",
        "managed": False,
        "locations": [location],
    }
    assert certificate_item(der, managed=False, locations=[])["fingerprint"] == item["fingerprint"]


@pytest.mark.parametrize(
    ("key", "algorithm", "key_type", "signature"),
    [
        (rsa.generate_private_key(65537, 2048), hashes.SHA256(), "rsa-2048",
         "sha256WithRSAEncryption"),
        (ed25519.Ed25519PrivateKey.generate(), None, "ed25519", "ed25519"),
    ],
)  # fmt: skip
def test_key_types_and_signatures_use_the_wire_vocabulary(key, algorithm, key_type, signature):
    item = certificate_item(_pem(key, algorithm=algorithm), managed=True, locations=[])
    assert (item["key_type"], item["signature_algorithm"], item["sans"]) == (
        key_type,
        signature,
        [],
    )


def test_merging_keeps_one_item_per_fingerprint_with_every_location():
    file = {"kind": "file", "path": "/a.pem"}
    endpoint = {"kind": "endpoint", "host": "127.0.0.1", "port": 443, "served": True}
    managed = [{"fingerprint": "AA", "managed": True, "locations": [file]}]
    found = [
        {"fingerprint": "aa", "managed": False, "locations": [file, endpoint]},
        {"fingerprint": "bb", "managed": False, "locations": []},
    ]
    merged = merge_items(managed, found)
    assert merged == [
        {"fingerprint": "AA", "managed": True, "locations": [file, endpoint]},
        {"fingerprint": "bb", "managed": False, "locations": []},
    ]
    assert managed[0]["locations"] == [file]  # the inputs are left as they were


def _event(n: int) -> dict:
    return {"type": "failed", "certificate": None, "name": "x", "detail": str(n), "at": "t"}


def test_the_queue_keeps_the_newest_events_and_drops_what_was_sent(tmp_path: Path):
    queue = ReportQueue(tmp_path)
    assert queue.load() == []
    for n in range(MAX_EVENTS + 5):
        queue.push(_event(n))
    events = queue.load()
    assert len(events) == MAX_EVENTS and events[0]["detail"] == "5"
    queue.drop(MAX_EVENTS - 1)
    assert [e["detail"] for e in queue.load()] == [str(MAX_EVENTS + 4)]


def test_an_unreadable_queue_starts_empty(tmp_path: Path):
    (tmp_path / "report-queue.json").write_text("{not json")
    assert ReportQueue(tmp_path).load() == []


class Poster:
    """The server end of a report: records what was sent, or refuses."""

    def __init__(self, url: str | None, refuse: bool = False) -> None:
        self.inventory_url = url
        self.refuse = refuse
        self.sent: list[tuple[str, dict]] = []

    def post_json(self, url: str, payload: dict) -> dict:
        if self.refuse:
            raise AcmeFailure("POST failed: urn:ietf:params:acme:error:malformed: nope")
        self.sent.append((url, payload))
        return {"items": len(payload["items"])}


class Clock:
    def now(self) -> datetime:
        return NOW


def test_flush_sends_the_queue_with_the_items_and_keeps_it_on_failure(tmp_path: Path):
    reporter = InventoryReporter(ReportQueue(tmp_path), Clock(), host="web1")
    reporter.queue.push(_event(1))
    refused = Poster("https://ca/inventory", refuse=True)
    assert not reporter.flush(refused, [{"fingerprint": "aa"}])
    assert len(reporter.queue.load()) == 1
    poster = Poster("https://ca/inventory")
    assert reporter.flush(poster, [{"fingerprint": "aa"}])
    assert poster.sent == [
        (
            "https://ca/inventory",
            {"host": "web1", "items": [{"fingerprint": "aa"}], "events": [_event(1)]},
        )
    ]
    assert reporter.queue.load() == []


def test_a_ca_without_inventory_gets_nothing_and_the_queue_is_emptied(tmp_path: Path):
    reporter = InventoryReporter(ReportQueue(tmp_path), Clock(), host="web1")
    reporter.queue.push(_event(1))
    poster = Poster(None)
    assert not reporter.flush(poster, [])
    assert poster.sent == [] and reporter.queue.load() == []
