"""`make run`: the demo serves HTTPS and the certbot command it prints works as printed."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cptest.net import free_port
from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 60

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(tmp_path) -> Iterator[tuple[str, Path]]:
    port, http01 = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTPLANE_")}
    env |= {
        "CERTPLANE_DATA_DIR": str(tmp_path / "demo"),
        "CERTPLANE_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/demo/certplane.db",
        "CERTPLANE_SERVER__LISTEN_PORT": str(port),
        "CERTPLANE_SERVER__BASE_URL": f"https://127.0.0.1:{port}",
        "CERTPLANE_VALIDATION__HTTP01_PORT": str(http01),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
    }
    process = subprocess.Popen(
        [str(BIN / "certplane"), "--config", str(ROOT / "demo" / "certplane.toml"), "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield _read_until_serving(process), tmp_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def _read_until_serving(process: subprocess.Popen[str]) -> str:
    """Everything the demo printed up to "serving ACME on …", within a bounded time."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline, output = time.monotonic() + STARTUP_SECONDS, ""
    while "serving ACME on" not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and process.poll() is None, f"demo did not start:\n{output}"
        if selector.select(timeout=remaining):
            output += process.stdout.readline()
    return output


def _printed_command(output: str) -> str:
    lines = output.split("Get a certificate", 1)[1].splitlines()[1:]
    command = []
    for line in lines:
        if not line.strip():
            break
        command.append(line.strip().removesuffix("\\").strip())
    return " ".join(command)


def test_printed_certbot_command_obtains_a_certificate(demo):
    output, home = demo
    assert "EAB kid" in output and "EAB HMAC key" in output
    assert "validation    : loopback and .localhost names allowed" in output
    assert re.search(
        r"WARNING .*validation may connect to special-purpose network 127\.0\.0\.0/8", output
    )
    command = _printed_command(output)
    assert command.startswith("REQUESTS_CA_BUNDLE=") and f" {BIN / 'certbot'} certonly " in command
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=home,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    live = home / "demo" / "certbot" / "config" / "live" / "demo.localhost"
    chain = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["demo.localhost"]
    chain[0].verify_directly_issued_by(chain[1])
    root = x509.load_pem_x509_certificate((home / "demo" / "root.pem").read_bytes())
    chain[1].verify_directly_issued_by(root)
    assert (home / "demo" / "master.key").stat().st_mode & 0o777 == 0o600
    assert (home / "demo" / "server.key").stat().st_mode & 0o777 == 0o600
