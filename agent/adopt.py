"""Adopting a discovered certificate: manage it from now on, for the same names, in the same
files the web server already reads, verified where it is served — without an outage (the files
are replaced atomically, the server reloads gracefully, and a deployment that is not proven is
rolled back)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from certplane.agent.discovery import DiscoveryReport, VirtualServer

# A server listening on every address is verified through loopback.
WILDCARDS = frozenset({"*", "", "0.0.0.0"})  # noqa: S104 (listen addresses, not a bind)


class AdoptError(Exception):
    """The certificate cannot be adopted as found; the message says what is missing."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    sni: str


@dataclass(frozen=True)
class AdoptionPlan:
    name: str
    names: tuple[str, ...]
    fullchain: str
    key: str
    verify: tuple[Endpoint, ...]


def plan_adoption(report: DiscoveryReport, path: str, name: str) -> AdoptionPlan:
    """The managed certificate that takes over the one the web server reads from ``path``."""
    record = next((r for r in report.certificates if any(f.path == path for f in r.files)), None)
    if record is None:
        raise AdoptError(f"discovery found no certificate in {path}")
    server = _server_using(report, path)
    # The names it certifies; a legacy certificate without SANs: the names it is served for.
    names = (*record.certificate.dns_names, *record.certificate.ip_addresses) or tuple(
        n for n in server.server_names if n and "*" not in n and n != "_"
    )
    if not names:
        raise AdoptError(f"neither {path} nor its server configuration names a host")
    key = next((r.path for r in server.references if r.role == "key" and r.path), None)
    if key is None:
        raise AdoptError(f"{server.file}:{server.line} names no key file for {path}")
    return AdoptionPlan(name, tuple(names), path, key, _endpoints(server, names[0]))


def _server_using(report: DiscoveryReport, path: str) -> VirtualServer:
    for config in report.configs:
        for server in config.servers:
            if any(r.role == "certificate" and r.path == path for r in server.references):
                return server
    raise AdoptError(f"no nginx or Apache server is configured with {path}")


def _endpoints(server: VirtualServer, first_name: str) -> tuple[Endpoint, ...]:
    sni = next((n for n in server.server_names if n and "*" not in n), first_name)
    found = []
    for listen in server.listen:
        if listen.port is None or (not listen.ssl and not server.tls):
            continue
        host = "127.0.0.1" if listen.host in WILDCARDS else listen.host.strip("[]")
        if host == "::":
            host = "::1"
        found.append(Endpoint(host, listen.port, sni))
    return tuple(dict.fromkeys(found))


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these characters


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def certificate_block(
    plan: AdoptionPlan, challenge: dict[str, str | int], reload: Sequence[str]
) -> str:
    """The ``[[certificate]]`` entry that manages the adopted certificate."""
    lines = [
        "",
        "[[certificate]]",
        f"name = {_toml_string(plan.name)}",
        f"names = {_toml_list(plan.names)}",
    ]
    if reload:
        lines.append(f"reload = {_toml_list(reload)}")
    lines.append("[certificate.challenge]")
    for key, value in challenge.items():
        lines.append(f"{key} = {value if isinstance(value, int) else _toml_string(value)}")
    lines += [
        "[certificate.deploy]",
        f"fullchain = {_toml_string(plan.fullchain)}",
        f"key = {_toml_string(plan.key)}",
    ]
    for endpoint in plan.verify:
        lines += [
            "[[certificate.verify]]",
            f"host = {_toml_string(endpoint.host)}",
            f"port = {endpoint.port}",
            f"sni = {_toml_string(endpoint.sni)}",
        ]
    return "\n".join(lines) + "\n"
