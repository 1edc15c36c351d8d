"""A real nginx (Debian's package) on a loopback high port, serving TLS with the files the
agent manages; started and stopped by the test."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from cptest.net import free_port

NGINX = "/usr/sbin/nginx"
READY_SECONDS = 15.0


class Nginx:
    def __init__(self, prefix: Path, *, cert: Path, key: Path, server_name: str) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.conf = prefix / "nginx.conf"
        self._cert, self._key, self._name = cert, key, server_name
        self._process: subprocess.Popen[bytes] | None = None
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self, extra: str = "") -> None:
        self.conf.write_text(
            f"""
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/tmp;
    proxy_temp_path {self.prefix}/tmp;
    fastcgi_temp_path {self.prefix}/tmp;
    uwsgi_temp_path {self.prefix}/tmp;
    scgi_temp_path {self.prefix}/tmp;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        server_name {self._name};
        ssl_certificate {self._cert};
        ssl_certificate_key {self._key};
        {extra}
        location / {{ return 200 "ok"; }}
    }}
}}
"""
        )

    def break_config(self) -> None:
        """A configuration nginx refuses: a reload fails, the running one stays."""
        self.write_config(extra="this_is_not_a_directive on;")

    @property
    def reload_argv(self) -> list[str]:
        return [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-s", "reload"]

    def __enter__(self) -> Nginx:
        (self.prefix / "tmp").mkdir(exist_ok=True)
        argv = [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"]
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import socket

        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
