"""pebble-challtestsrv as the fake DNS of dns-01 tests: a subprocess on loopback ports.

Only its DNS server and management API listen; the http-01, https-01 and tls-alpn-01 responders
are disabled. Records are changed over the management API (``POST /set-txt``, ``/clear-txt``,
``/add-a``); answers are read back over DNS, as the server under test reads them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import IO, Self

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

BINARY = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"
HOST = "127.0.0.1"
READY_SECONDS = 10.0
POLL_SECONDS = 0.05
PROBE_NAME = "ready.challtestsrv.test."


def free_dual_port(host: str = HOST) -> int:
    """A port free for both TCP and UDP (the DNS server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def _free_tcp_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ChallTestSrv:
    """``with ChallTestSrv() as dns:`` starts it, waits until both ports answer, stops it."""

    def __init__(self) -> None:
        self.dns_port = free_dual_port()
        self.management_port = _free_tcp_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def dns_server(self) -> str:
        """``host:port``, as ``validation.dns_servers`` takes it."""
        return f"{HOST}:{self.dns_port}"

    @property
    def management_url(self) -> str:
        return f"http://{HOST}:{self.management_port}"

    def _flags(self) -> dict[str, str]:
        """An empty address disables a listener: only DNS and the management API run."""
        return {
            "-dns01": self.dns_server,
            "-management": f"{HOST}:{self.management_port}",
            "-http01": "",
            "-https01": "",
            "-tlsalpn01": "",
        }

    def __enter__(self) -> Self:
        self._log = tempfile.TemporaryFile()
        listeners = self._flags()
        self._process = subprocess.Popen(
            [BINARY, *(part for flag in listeners.items() for part in flag)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def _wait_ready(self) -> None:
        """Poll both ports until they answer, for at most ``READY_SECONDS``."""
        deadline = time.monotonic() + READY_SECONDS
        while not (self._management_answers() and self._dns_answers()):
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"pebble-challtestsrv exited early:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pebble-challtestsrv not ready in time:\n{self.output()}")
            time.sleep(POLL_SECONDS)

    def _management_answers(self) -> bool:
        try:
            socket.create_connection((HOST, self.management_port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def _dns_answers(self) -> bool:
        try:
            return bool(self._query(PROBE_NAME, "A", timeout=0.5).answer)
        except (OSError, dns.exception.DNSException):
            return False

    def output(self) -> str:
        """What the process has logged so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _post(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            self.management_url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def set_txt(self, host: str, value: str) -> None:
        """Add a TXT value at ``host`` (values accumulate until ``clear_txt``)."""
        self._post("/set-txt", {"host": _fqdn(host), "value": value})

    def clear_txt(self, host: str) -> None:
        self._post("/clear-txt", {"host": _fqdn(host)})

    def add_a(self, host: str, addresses: list[str]) -> None:
        self._post("/add-a", {"host": _fqdn(host), "addresses": addresses})

    def _query(self, name: str, rdtype: str, timeout: float = 2.0) -> dns.message.Message:
        query = dns.message.make_query(_fqdn(name), rdtype)
        return dns.query.udp(query, HOST, port=self.dns_port, timeout=timeout)

    def txt(self, name: str) -> list[str]:
        """The TXT values served at ``name`` now, each record's strings joined."""
        return [
            b"".join(rdata.strings).decode()
            for rrset in self._query(name, "TXT").answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        ]


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."
