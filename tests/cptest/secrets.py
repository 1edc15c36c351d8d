"""Every secret the suite creates, and a scanner that proves none of them reached a log.

The security invariant: private keys, EAB HMAC keys, master keys and PINs never reach a log,
an error body or a metric label.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

KNOWN_SECRETS: set[str] = set()
_LOCK = threading.Lock()
PEM_PRIVATE = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")


def remember(secret: str | bytes) -> None:
    """Register a secret; its raw and base64 forms are searched for."""
    raw = secret if isinstance(secret, bytes) else secret.encode()
    forms = {
        raw.decode("latin-1"),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }
    with _LOCK:
        KNOWN_SECRETS.update(f for f in forms if len(f) >= 16)


class CapturingHandler(logging.Handler):
    """Keeps every formatted record (with tracebacks) the process logs during the suite."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def leaks(lines: list[str], secrets: set[str]) -> list[str]:
    """Log lines that hold a PEM private key or any known secret (shown redacted)."""
    found = []
    for line in lines:
        if PEM_PRIVATE.search(line) or any(s in line for s in secrets):
            found.append(line[:80] + "…")
    return found
