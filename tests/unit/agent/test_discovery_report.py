"""The join, on hand-made observations: served or not, findings, ordering, JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from certplane.agent.discovery import (
    CertificateFileScan,
    CertificateInfo,
    CertReference,
    ConfiguredAt,
    Finding,
    FoundCertificate,
    ListenAddress,
    ListenerScan,
    ListeningSocket,
    Observations,
    ProbeResult,
    ProbeRun,
    ServedAt,
    ServerConfig,
    SkippedFile,
    VirtualServer,
    build_report,
    certificate_findings,
)
from certplane.agent.discovery.matching import default_servers, listen_covers, sni_name, sni_plan

NOW = datetime(2030, 6, 1, tzinfo=UTC)
CONF = "/etc/nginx/nginx.conf"


def info(
    fp: str, *, days: int = 60, key: str = "ec-p256", self_signed: bool = False, ca: bool = False
):
    return CertificateInfo(
        fingerprint=fp,
        subject=f"CN={fp}",
        issuer="CN=CA",
        dns_names=(),
        ip_addresses=(),
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=days),
        key_type=key,
        serial="01",
        self_signed=self_signed,
        is_ca=ca,
    )


def listen(port: int, host: str = "*", *, ssl: bool = True, default: bool = False, line: int = 1):
    return ListenAddress(host, port, ssl, default, CONF, line)


def cert_ref(path: str | None, line: int, role: str = "certificate", value: str | None = None):
    return CertReference(
        "ssl_certificate" if role != "key" else "ssl_certificate_key",
        role,  # type: ignore[arg-type]
        value or path or "$var",
        path,
        CONF,
        line,
        None if path else "contains a variable",
    )


def server(
    line: int, names: tuple[str, ...], listens: tuple[ListenAddress, ...], *refs: CertReference
):
    return VirtualServer("nginx", CONF, line, names, listens, any(a.ssl for a in listens), refs)


def observe(servers, *, files=None, keys=(), sockets=(), probes=(), served=None) -> Observations:
    files = files or {}
    return Observations(
        now=NOW,
        scan=CertificateFileScan(),
        configs=(ServerConfig("nginx", CONF, (CONF,), tuple(servers), (), ()),),
        referenced={
            p: CertificateFileScan(found=tuple(FoundCertificate(p, i, c) for i, c in enumerate(cs)))
            for p, cs in files.items()
        },
        present_keys=frozenset(keys),
        listeners=ListenerScan(tuple(sockets), ()),
        probes=ProbeRun(tuple(probes), served or {}),
    )


def tls(port: int, sni: str | None, fp: str, host: str = "127.0.0.1") -> ProbeResult:
    return ProbeResult(host, port, sni, "tls", fp)


SOCK = ListeningSocket("ipv4", "0.0.0.0", 443)


# --- certificate findings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "codes"),
    [(-1, ["expired"]), (0, ["expires-soon"]), (29, ["expires-soon"]), (30, []), (90, [])],
)
def test_expiry_thresholds(days, codes):
    assert [
        f.code for f in certificate_findings(info("a", days=days), NOW, timedelta(days=30))
    ] == codes


def test_expiry_detail_and_other_certificate_findings():
    assert certificate_findings(info("a", days=-2, key="rsa-1024", self_signed=True), NOW) == [
        Finding("expired", "a", None, None, None, "notAfter 2030-05-30T00:00:00Z"),
        Finding("self-signed", "a", None, None, None, ""),
        Finding("weak-key", "a", None, None, None, "rsa-1024: below 2048 bits"),
    ]
    assert certificate_findings(info("ca", self_signed=True, ca=True), NOW) == []


# --- served ------------------------------------------------------------------------------------


def test_served_by_sni_and_by_default_server():
    a = server(1, ("a.test",), (listen(443),), cert_ref("/a.pem", 2))
    b = server(5, ("b.test",), (listen(443, default=True),), cert_ref("/b.pem", 6))
    observed = observe(
        [a, b],
        files={"/a.pem": [info("A")], "/b.pem": [info("B")]},
        sockets=[SOCK],
        probes=[tls(443, None, "B"), tls(443, "a.test", "A"), tls(443, "b.test", "B")],
        served={"A": info("A"), "B": info("B")},
    )
    report = build_report(observed)
    assert [
        (r.certificate.fingerprint, [c.served for c in r.configured]) for r in report.certificates
    ] == [
        ("A", [True]),
        ("B", [True]),
    ]
    assert report.certificates[0].served == (ServedAt("127.0.0.1", 443, "a.test"),)
    assert report.certificates[1].served == (
        ServedAt("127.0.0.1", 443, None),
        ServedAt("127.0.0.1", 443, "b.test"),
    )
    assert report.findings == ()


def test_not_served_names_what_the_port_serves():
    a = server(1, ("a.test",), (listen(443),), cert_ref("/a.pem", 2))
    observed = observe(
        [a],
        files={"/a.pem": [info("NEW")]},
        sockets=[SOCK],
        probes=[tls(443, "a.test", "OLD")],
        served={"OLD": info("OLD")},
    )
    report = build_report(observed)
    assert report.findings == (
        Finding(
            "configured-but-not-served",
            "NEW",
            "/a.pem",
            CONF,
            2,
            "127.0.0.1:443 sni a.test serves OLD",
        ),
    )
    assert [r.configured[0].served if r.configured else None for r in report.certificates] == [
        True is False,
        None,
    ]


def test_one_of_two_leaves_served_is_enough():
    a = server(1, ("a.test",), (listen(443),), cert_ref("/ec.pem", 2), cert_ref("/rsa.pem", 3))
    observed = observe(
        [a],
        files={"/ec.pem": [info("EC")], "/rsa.pem": [info("RSA")]},
        sockets=[SOCK],
        probes=[tls(443, "a.test", "EC")],
    )
    report = build_report(observed)
    assert [r.configured[0].served for r in report.certificates] == [True, False]
    assert report.findings == ()


def test_served_is_unknown_without_a_relevant_handshake():
    tls_elsewhere = server(1, ("a.test",), (listen(8443),), cert_ref("/a.pem", 2))
    plain = server(5, ("a.test",), (listen(443, ssl=False),), cert_ref("/a.pem", 6))
    unnamed = server(9, ("other.test",), (listen(443),), cert_ref("/a.pem", 10))
    observed = observe(
        [tls_elsewhere, plain, unnamed, server(12, ("x.test",), (listen(443),))],
        files={"/a.pem": [info("A")]},
        sockets=[SOCK],
        probes=[
            tls(443, "a.test", "Z"),
            ProbeResult("127.0.0.1", 443, "other.test", "tls-error", None, "ALERT"),
        ],
    )
    report = build_report(observed)
    assert [c.served for c in report.certificates[0].configured] == [None, None, None]
    assert report.findings == ()


def test_chain_certificates_are_never_judged():
    a = server(
        1,
        ("a.test",),
        (listen(443),),
        cert_ref("/bundle.pem", 2),
        cert_ref("/chain.pem", 3, "chain"),
    )
    observed = observe(
        [a],
        files={"/bundle.pem": [info("LEAF"), info("INT")], "/chain.pem": [info("INT")]},
        sockets=[SOCK],
        probes=[tls(443, "a.test", "LEAF")],
    )
    (intermediate, leaf) = build_report(observed).certificates
    assert [(c.role, c.path, c.index, c.served) for c in intermediate.configured] == [
        ("chain", "/bundle.pem", 1, None),
        ("chain", "/chain.pem", 0, None),
    ]
    assert [(c.role, c.served) for c in leaf.configured] == [("leaf", True)]


# --- reference findings ------------------------------------------------------------------------


def test_missing_unreadable_and_unresolvable_references_inherited_reported_once():
    inherited_key = cert_ref("/keys/gone.key", 20, "key")
    present_key = cert_ref("/keys/ok.key", 21, "key")
    refs = (
        cert_ref("/gone.pem", 2),
        cert_ref("/junk.pem", 3),
        cert_ref(None, 4),
        inherited_key,
        present_key,
    )
    observed = observe(
        [
            server(1, ("a",), (listen(443),), *refs),
            server(7, ("b",), (listen(443),), inherited_key),
        ],
        keys=["/keys/ok.key"],
    )
    referenced = {
        "/gone.pem": CertificateFileScan(skipped=(SkippedFile("/gone.pem", "missing"),)),
        "/junk.pem": CertificateFileScan(
            skipped=(SkippedFile("/junk.pem", "not-a-certificate", None, "neither PEM nor DER"),)
        ),
    }
    observed = replace(observed, referenced=referenced)
    report = build_report(observed)
    assert report.findings == (
        Finding("missing-file", None, "/gone.pem", CONF, 2, "ssl_certificate"),
        Finding("missing-file", None, "/keys/gone.key", CONF, 20, "ssl_certificate_key"),
        Finding("unreadable", None, "/junk.pem", CONF, 3, "ssl_certificate: not-a-certificate"),
        Finding(
            "unresolvable-path", None, None, CONF, 4, "ssl_certificate $var: contains a variable"
        ),
    )
    assert report.skipped == (
        SkippedFile("/gone.pem", "missing"),
        SkippedFile("/junk.pem", "not-a-certificate", None, "neither PEM nor DER"),
    )


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sni"),
    [
        ("www.Example.test", "www.example.test"),
        (".example.test", "example.test"),
        ("example.test.", "example.test"),
        ("https://a.test:8443", "a.test"),
        ("a.test:443", "a.test"),
        ("*.example.test", None),
        ("mail.*", None),
        ("~^www\\d+\\.test$", None),
        ("$hostname", None),
        ("_", None),
        ("", None),
        ("192.0.2.1", None),
        ("[::1]:443", None),
    ],
)
def test_sni_names(name, sni):
    assert sni_name(name) == sni


@pytest.mark.parametrize(
    ("host", "port", "address", "covered"),
    [
        ("*", 443, "127.0.0.1", True),
        ("_default_", 443, "::", True),
        ("127.0.0.1", 443, "0.0.0.0", True),
        ("127.0.0.1", 443, "127.0.0.1", True),
        ("127.0.0.2", 443, "127.0.0.1", False),
        ("::1", 443, "::1", True),
        ("::1", 443, "127.0.0.1", False),
        ("localhost", 443, "127.0.0.1", True),
        ("*", 8443, "127.0.0.1", False),
    ],
)
def test_listen_covers(host, port, address, covered):
    family = "ipv6" if ":" in address else "ipv4"
    assert listen_covers(listen(port, host), ListeningSocket(family, address, 443)) is covered


def test_default_server_per_software_and_sni_plan():
    first = server(1, ("a.test", "*.a.test"), (listen(443),))
    flagged = server(5, ("b.test", "a.test"), (listen(443, default=True),))
    plain = server(9, ("c.test",), (listen(443, ssl=False),))
    apache = VirtualServer("apache", "/a.conf", 1, ("d.test",), (listen(443),), True, ())
    assert default_servers([first, flagged, plain, apache], SOCK) == [flagged, apache]
    assert default_servers([first, plain], SOCK) == [first]
    assert sni_plan([SOCK], [first, flagged, plain, apache]) == {
        SOCK: ("a.test", "b.test", "d.test")
    }


# --- report ------------------------------------------------------------------------------------


def test_json_is_plain_and_deterministic():
    a = server(1, ("a.test",), (listen(443),), cert_ref("/a.pem", 2))
    observed = observe(
        [a], files={"/a.pem": [info("A")]}, sockets=[SOCK], probes=[tls(443, "a.test", "A")]
    )
    report = build_report(observed)
    document = json.loads(report.to_json())
    assert document["generated_at"] == "2030-06-01T00:00:00Z"
    assert document["certificates"][0]["certificate"]["not_after"] == "2030-07-31T00:00:00Z"
    assert document["certificates"][0]["configured"] == [
        {
            "software": "nginx",
            "config_file": CONF,
            "line": 2,
            "directive": "ssl_certificate",
            "role": "leaf",
            "path": "/a.pem",
            "index": 0,
            "server_names": ["a.test"],
            "listen": [
                {
                    "host": "*",
                    "port": 443,
                    "ssl": True,
                    "default_server": False,
                    "file": CONF,
                    "line": 1,
                }
            ],
            "served": True,
        }
    ]
    assert document["sockets"] == [{"family": "ipv4", "address": "0.0.0.0", "port": 443}]
    assert build_report(observed).to_json() == report.to_json()
    assert isinstance(report.certificates[0].configured[0], ConfiguredAt)
