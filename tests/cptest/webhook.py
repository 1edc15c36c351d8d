"""A webhook receiver on loopback: records every POST, checks its HMAC-SHA256 signature, and
lets a test wait for an event (no sleeping)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cptest.net import free_port


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.secret: bytes | None = None
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.answer_status = 200
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, event: str, *, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        """The first ``count`` deliveries of ``event`` (raises TimeoutError if they never come)."""
        with self._changed:
            done = self._changed.wait_for(lambda: len(self.of(event)) >= count, timeout)
        if not done:
            raise TimeoutError(f"no {event} webhook within {timeout}s: {self.received}")
        return self.of(event)[:count]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["body"]["type"] == event]

    def _verify(self, header: str, body: bytes) -> bool:
        if self.secret is None:
            return False
        parts = dict(item.split("=", 1) for item in header.split(","))
        mac = hmac.new(self.secret, f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, parts["v1"])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = receiver._verify(self.headers.get("Certplane-Signature", ""), body)
                with receiver._changed:  # recorded before the sender sees the answer
                    if not signed:
                        receiver.bad_signatures += 1
                    receiver.received.append(
                        {
                            "body": json.loads(body),
                            "delivery": self.headers.get("Certplane-Delivery"),
                            "signed": signed,
                        }
                    )
                    receiver._changed.notify_all()
                self.send_response(receiver.answer_status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
