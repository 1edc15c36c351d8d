"""SoftHSM2 for tests: one throwaway token directory per test session, tokens made on demand.

SoftHSM reads ``SOFTHSM2_CONF`` when the module is initialised, so `session_softhsm` sets it
before anything loads the module; tokens created later become visible when the keystore
reinitialises the module (which it does when a token is not found).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cptest.secrets import KNOWN_SECRETS

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "so-" + "0" * 13


class SoftHsm:
    """A SoftHSM2 token directory; ``pin_source`` finds each token's PIN in a 0600 file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token_dir = root / "tokens"
        self.token_dir.mkdir(parents=True)
        self.pins = root / "pins"
        self.pins.mkdir(mode=0o700)
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.token_dir}\n"
            "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(self.conf)

    @property
    def module(self) -> str:
        return MODULE

    @property
    def pin_source(self) -> str:
        return f"file:{self.pins}/{{token}}.pin"

    def new_token(self, prefix: str = "t") -> str:
        """Initialise a token with a random label and PIN; returns the label."""
        label = f"{prefix}-{secrets.token_hex(4)}"
        pin = secrets.token_urlsafe(12)
        KNOWN_SECRETS.add(pin)
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", pin],
            check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )  # fmt: skip
        pin_file = self.pins / f"{label}.pin"
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        return label

    @contextlib.contextmanager
    def tokens_away(self) -> Iterator[None]:
        """Every token disappears from the directory inside the block, and comes back after."""
        backup = Path(tempfile.mkdtemp(prefix="softhsm-backup-")) / "tokens"
        shutil.copytree(self.token_dir, backup)
        for child in self.token_dir.iterdir():
            shutil.rmtree(child)
        try:
            yield
        finally:
            shutil.copytree(backup, self.token_dir, dirs_exist_ok=True)


_SESSION: SoftHsm | None = None


def session_softhsm() -> SoftHsm:
    """The test session's SoftHSM (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = SoftHsm(Path(tempfile.mkdtemp(prefix="softhsm-")))
    return _SESSION
