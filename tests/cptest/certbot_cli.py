"""The certbot 5 CLI as a subprocess, one home (config, work and logs dirs) per test.

Every run is non-interactive (``-n --agree-tos``), names its own ``--config-dir``, ``--work-dir``
and ``--logs-dir``, and talks to one tenant's directory URL. certbot's debug log holds every ACME
request and response, so the server's answers (problem documents) can be read back from it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

CERTBOT = Path(sys.executable).parent / "certbot"
EMAIL = "ops@example.com"
TIMEOUT_SECONDS = 120
MANAGEMENT_URL_ENV = "CHALLTESTSRV_URL"
HOOK_RECORD_ENV = "CERTPLANE_HOOK_RECORD"
PROBLEM_PREFIX = "urn:ietf:params:acme:error:"
# Each record of certbot's debug log starts with "2026-01-01 12:00:00,123:DEBUG:acme.client:".
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}:[A-Z]+:[\w.]+:", re.MULTILINE)
_REQUEST = re.compile(r"Sending (GET|HEAD|POST) request to (\S+)[.:]$")
_RESPONSE = "Received response:\nHTTP "


@dataclass(frozen=True)
class Exchange:
    """One ACME request certbot sent and the server's answer, as certbot's log recorded them."""

    method: str
    url: str
    jws: str
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def protected(self) -> dict[str, Any]:
        """The decoded protected header of the request's JWS."""
        return dict(json.loads(b64url_decode(json.loads(self.jws)["protected"])))

    def payload(self) -> Any:
        """The decoded payload of the request's JWS (None for POST-as-GET)."""
        raw = b64url_decode(json.loads(self.jws)["payload"])
        return json.loads(raw) if raw else None


def _exchanges(log: str) -> list[Exchange]:
    """Pair each "Sending ... request" record with the "Received response" record after it."""
    exchanges: list[Exchange] = []
    request: tuple[str, str, str] | None = None
    for record in _RECORD.split(log):
        first_line, _, rest = record.partition("\n")
        if match := _REQUEST.fullmatch(first_line.strip()):
            request = (match[1], match[2], rest.strip())
        elif record.startswith(_RESPONSE) and request is not None:
            status, _, rest = record[len(_RESPONSE) :].partition("\n")
            head, _, body = rest.partition("\n\n")
            headers = dict(_header(line) for line in head.splitlines() if ": " in line)
            exchanges.append(Exchange(*request, int(status), body.strip(), headers))
            request = None
    return exchanges


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(": ")
    return name.strip().lower(), value.strip()


@dataclass(frozen=True)
class CertbotRun:
    """One finished certbot invocation: exit code, console output and its debug log."""

    args: tuple[str, ...]
    returncode: int
    output: str
    log: str

    def exchanges(self) -> list[Exchange]:
        return _exchanges(self.log)

    def responses(self) -> list[tuple[str, str, int]]:
        """(method, URL, HTTP status) of every request this run sent, in order."""
        return [(e.method, e.url, e.status) for e in self.exchanges()]

    def problem_types(self) -> list[str]:
        """Every ACME problem type the server answered with during this run, in order."""
        return [
            e.json()["type"]
            for e in self.exchanges()
            if e.status >= 400
            and e.body.startswith("{")
            and str(e.json().get("type", "")).startswith(PROBLEM_PREFIX)
        ]

    def failure_report(self) -> str:
        """What to show when the run was expected to succeed: output and the server's answers."""
        answers = "\n".join(
            f"  {e.method} {e.url} -> {e.status} {e.body[:300] if e.status >= 400 else ''}"
            for e in self.exchanges()
        )
        return f"{' '.join(self.args)}\nexit {self.returncode}\n{self.output}\n{answers}"

    def posts_to(self, url: str) -> list[Exchange]:
        return [e for e in self.exchanges() if e.method == "POST" and e.url == url]

    def jws_headers(self, url: str) -> list[dict[str, Any]]:
        """The protected header of every JWS this run POSTed to ``url``."""
        return [e.protected() for e in self.posts_to(url)]


@dataclass(frozen=True)
class Lineage:
    """The files of ``live/{name}/``, parsed."""

    cert: x509.Certificate
    chain: list[x509.Certificate]
    fullchain: list[x509.Certificate]
    privkey: PrivateKeyTypes

    def dns_names(self) -> list[str]:
        san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return sorted(san.get_values_for_type(x509.DNSName))


class CertbotHome:
    """A certbot installation of its own under ``root``, pointed at one directory URL."""

    def __init__(self, root: Path, server: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.server = server
        self.config_dir = root / "config"
        self.work_dir = root / "work"
        self.logs_dir = root / "logs"
        self._env = {**os.environ, **(env or {})}

    def run(self, *args: str, email: str = EMAIL, check: bool = True) -> CertbotRun:
        """``certbot {args}`` with the common flags; ``check`` asserts exit code 0."""
        argv = (str(CERTBOT), *args, *self._common_flags(email))
        proc = subprocess.run(
            argv,
            env=self._env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        result = CertbotRun(argv, proc.returncode, proc.stdout + proc.stderr, self._last_log())
        if check:
            assert result.returncode == 0, result.failure_report()
        return result

    def _common_flags(self, email: str) -> tuple[str, ...]:
        return (
            "-n",
            "--agree-tos",
            "-m", email,
            "--server", self.server,
            "--config-dir", str(self.config_dir),
            "--work-dir", str(self.work_dir),
            "--logs-dir", str(self.logs_dir),
        )  # fmt: skip

    def _last_log(self) -> str:
        """certbot rotates its log at start, so ``letsencrypt.log`` is the last run's."""
        path = self.logs_dir / "letsencrypt.log"
        return path.read_text() if path.exists() else ""

    def account_dirs(self) -> list[Path]:
        """``accounts/{host:port}/{path}/{account id}/`` for this home's server."""
        host_path = self.server.split("://", 1)[1]
        base = self.config_dir / "accounts" / host_path
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def account(self) -> dict[str, Any]:
        """The one account's ``regr.json`` plus its id; fails unless exactly one exists."""
        (account_dir,) = self.account_dirs()
        files = {p.name for p in account_dir.iterdir()}
        assert files == {"meta.json", "private_key.json", "regr.json"}, files
        regr = json.loads((account_dir / "regr.json").read_text())
        return {"id": account_dir.name, **regr}

    def adopt_accounts(self, other: CertbotHome) -> None:
        """Copy ``other``'s accounts here, so this home orders as that account."""
        shutil.copytree(other.config_dir / "accounts", self.config_dir / "accounts")

    def live(self, name: str) -> Path:
        return self.config_dir / "live" / name

    def lineage(self, name: str) -> Lineage:
        live = self.live(name)
        privkey = serialization.load_pem_private_key((live / "privkey.pem").read_bytes(), None)
        return Lineage(
            cert=x509.load_pem_x509_certificate((live / "cert.pem").read_bytes()),
            chain=x509.load_pem_x509_certificates((live / "chain.pem").read_bytes()),
            fullchain=x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes()),
            privkey=privkey,
        )


_HOOK = string.Template(
    """\
# certbot --manual-$kind-hook for dns-01: the management API of pebble-challtestsrv.
import json, os, urllib.request


def post(path, body):
    url = os.environ["$url_env"] + path
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).read()


domain = os.environ["CERTBOT_DOMAIN"]
validation = os.environ.get("CERTBOT_VALIDATION", "")
with open(os.environ["$record_env"], "a") as record:
    record.write(json.dumps(["$kind", domain, validation]) + "\\n")
$action
"""
)
_HOOK_ACTIONS = {
    "auth": 'post("/set-txt", {"host": f"_acme-challenge.{domain}.", "value": validation})',
    "cleanup": 'post("/clear-txt", {"host": f"_acme-challenge.{domain}."})',
}


def write_dns_hooks(directory: Path) -> tuple[str, str]:
    """Write the auth and cleanup hooks; return their commands for ``--manual-*-hook``.

    The auth hook publishes ``$CERTBOT_VALIDATION`` as TXT at ``_acme-challenge.$CERTBOT_DOMAIN``
    through challtestsrv's management API (its URL in ``$CHALLTESTSRV_URL``); the cleanup hook
    clears it. Both append ``[kind, domain, validation]`` to ``$CERTPLANE_HOOK_RECORD``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    commands = []
    for kind, action in _HOOK_ACTIONS.items():
        script = directory / f"{kind}_hook.py"
        text = _HOOK.substitute(
            kind=kind, action=action, url_env=MANAGEMENT_URL_ENV, record_env=HOOK_RECORD_ENV
        )
        script.write_text(text)
        commands.append(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    return commands[0], commands[1]


def listed_certificates(output: str) -> dict[str, dict[str, str]]:
    """``certbot certificates`` as {certificate name: {field: value}}, e.g. "Serial Number"."""
    listed: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in output.splitlines():
        field, sep, value = line.strip().partition(": ")
        if field == "Certificate Name":
            current = listed.setdefault(value, {})
        elif sep and current is not None:
            current[field] = value
    return listed


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hook_calls(record: Path) -> list[tuple[str, str, str]]:
    """What the hooks recorded: (kind, domain, validation) per call, in order."""
    if not record.exists():
        return []
    return [tuple(json.loads(line)) for line in record.read_text().splitlines()]
