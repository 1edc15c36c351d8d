"""The log scanner itself must be able to fail."""

from __future__ import annotations

import logging

from cptest.secrets import KNOWN_SECRETS, CapturingHandler, leaks, remember


def test_scanner_finds_pem_keys_and_known_secrets():
    handler = CapturingHandler()
    log = logging.getLogger("scan-test")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("ok line")
        log.warning("key -----BEGIN PRIVATE KEY----- abc")
        log.warning("hmac %s", "s3cr3t-hmac-value-1234567890")
    finally:
        log.removeHandler(handler)
    assert len(leaks(handler.lines, {"s3cr3t-hmac-value-1234567890"})) == 2
    assert leaks(["nothing here"], {"s3cr3t-hmac-value-1234567890"}) == []


def test_remember_covers_base64_forms():
    remember(b"\x00" * 32)
    assert "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" in KNOWN_SECRETS
