"""Challenge responders on loopback, run in threads: what an ACME client would serve."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Http01Responder:
    """Serves ``/.well-known/acme-challenge/{token}`` from a dict (RFC 8555 §8.3)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.tokens: dict[str, str] = {}
        tokens = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix = "/.well-known/acme-challenge/"
                body = (
                    tokens.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
                )
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Http01Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
