"""Challenge solvers (RFC 8555 §8): http-01 standalone or webroot, dns-01 by RFC 2136 dynamic
update with TSIG or by a hook program.

Nothing the server sends reaches a shell: hooks run as an argv list with the values in the
environment, and a token that is not plain base64url (§8.1) is refused before it can name a
path in a webroot.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

CHALLENGE_PATH = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # matched whole (fullmatch), never with "$"
HOOK_TIMEOUT_SECONDS = 300


class SolverError(Exception):
    """A challenge could not be presented; the message says why."""


def checked_token(token: str) -> str:
    """The token, if it is plain base64url (RFC 8555 §8.1); anything else is refused."""
    if not _TOKEN.fullmatch(token):
        raise SolverError("the challenge token is not plain base64url: refused")
    return token


class Http01Standalone:
    """Answers http-01 on its own listener (``address``:``port``) while an order runs."""

    challenge_type = "http-01"

    def __init__(self, address: str = "0.0.0.0", port: int = 80) -> None:  # noqa: S104
        self._address, self._port = address, port
        self._answers: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        with self._lock:
            self._answers[checked_token(token)] = key_authorization
            if self._server is None:
                self._start()

    def cleanup(self, identifier: str, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)
            if not self._answers and self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def _start(self) -> None:
        try:
            self._server = ThreadingHTTPServer((self._address, self._port), self._handler())
        except OSError as exc:
            raise SolverError(
                f"http-01: cannot listen on {self._address}:{self._port}: {exc}"
            ) from None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        answers = self._answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = (
                    self.path[len(CHALLENGE_PATH) :] if self.path.startswith(CHALLENGE_PATH) else ""
                )
                answer = answers.get(token)
                body = (answer or "").encode()
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class Http01Webroot:
    """Answers http-01 through the web server already running: a file under its webroot."""

    challenge_type = "http-01"

    def __init__(self, webroot: Path, write: Callable[[Path, bytes], None]) -> None:
        self._dir = webroot / ".well-known" / "acme-challenge"
        self._write = write

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        path = self._dir / checked_token(token)
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._write(path, key_authorization.encode())

    def cleanup(self, identifier: str, token: str) -> None:
        if _TOKEN.fullmatch(token):
            (self._dir / token).unlink(missing_ok=True)


def _record_name(identifier: str) -> str:
    """``_acme-challenge.<name>`` (RFC 8555 §8.4); a wildcard proves its base name."""
    return "_acme-challenge." + identifier.removeprefix("*.").rstrip(".") + "."


class Dns01Rfc2136:
    """Publishes the TXT record by a DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945)."""

    challenge_type = "dns-01"

    def __init__(
        self,
        *,
        server: str,
        port: int,
        zone: str,
        key_name: str,
        key_secret: str,
        algorithm: str = "hmac-sha256",
        ttl: int = 60,
        timeout: float = 10.0,
    ) -> None:
        self._server, self._port, self._timeout, self._ttl = server, port, timeout, ttl
        self._zone = dns.name.from_text(zone)
        self._keyring = dns.tsigkeyring.from_text({key_name: key_secret})
        self._key_name = dns.name.from_text(key_name)
        self._algorithm = dns.name.from_text(algorithm)
        self._published: dict[tuple[str, str], str] = {}

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        name = _record_name(identifier)
        self._send(lambda update: update.add(name, self._ttl, "TXT", f'"{key_authorization}"'))
        self._published[(identifier, token)] = key_authorization

    def cleanup(self, identifier: str, token: str) -> None:
        value = self._published.pop((identifier, token), None)
        if value is not None:
            name = _record_name(identifier)
            self._send(lambda update: update.delete(name, "TXT", f'"{value}"'))

    def _send(self, change: Callable[[dns.update.UpdateMessage], None]) -> None:
        update = dns.update.UpdateMessage(
            self._zone, keyring=self._keyring, keyname=self._key_name, keyalgorithm=self._algorithm
        )
        change(update)
        try:
            response = dns.query.tcp(update, self._server, port=self._port, timeout=self._timeout)
        except (OSError, dns.exception.DNSException) as exc:
            raise SolverError(f"dns-01: the update to {self._server} failed: {exc}") from None
        if response.rcode() != dns.rcode.NOERROR:
            raise SolverError(
                f"dns-01: {self._server} refused the update: {dns.rcode.to_text(response.rcode())}"
            )


class HookSolver:
    """Runs an operator's program to publish (``present``) and remove (``cleanup``) a
    challenge: argv only, values in the environment (CERTPLANE_IDENTIFIER, CERTPLANE_TOKEN,
    CERTPLANE_VALIDATION, CERTPLANE_ACTION), never through a shell."""

    def __init__(self, challenge_type: str, argv: Sequence[str]) -> None:
        self.challenge_type = challenge_type
        self._argv = list(argv)
        self._validations: dict[tuple[str, str], str] = {}

    def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self._run("present", identifier, checked_token(token), key_authorization)
        self._validations[(identifier, token)] = key_authorization

    def cleanup(self, identifier: str, token: str) -> None:
        value = self._validations.pop((identifier, token), None)
        if value is not None:
            self._run("cleanup", identifier, token, value)

    def _run(self, action: str, identifier: str, token: str, validation: str) -> None:
        env = {
            **os.environ,
            "CERTPLANE_ACTION": action,
            "CERTPLANE_CHALLENGE": self.challenge_type,
            "CERTPLANE_IDENTIFIER": identifier,
            "CERTPLANE_TOKEN": token,
            "CERTPLANE_VALIDATION": validation,
        }
        try:
            done = subprocess.run(  # noqa: S603 (an operator's argv, no shell)
                self._argv,
                env=env,
                capture_output=True,
                timeout=HOOK_TIMEOUT_SECONDS,
                check=False,
                shell=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SolverError(f"{self.challenge_type} hook {self._argv[0]}: {exc}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-300:]
            hook = f"{self.challenge_type} hook {self._argv[0]} {action}"
            raise SolverError(f"{hook} exited {done.returncode}: {tail}")
