"""Shared fixtures: a provisioned certplane on SQLite and PostgreSQL, served on loopback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cptest.databases import PG_HELP, database_url, postgres_available
from cptest.net import free_port
from cptest.responders import Http01Responder
from cptest.secrets import KNOWN_SECRETS, CapturingHandler, leaks
from cptest.server import Platform, ServerThread, make_config, provision

BACKENDS = ("sqlite", "postgresql")
TENANTS = {"alpha": True, "beta": True, "open": False}


LOG_CAPTURE = CapturingHandler()


def pytest_sessionstart(session: pytest.Session) -> None:
    if not postgres_available():
        pytest.exit(PG_HELP, returncode=3)
    root = logging.getLogger()
    root.addHandler(LOG_CAPTURE)
    root.setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any captured log line holds a private key or a known secret."""
    found = leaks(LOG_CAPTURE.lines, KNOWN_SECRETS)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"log scan: {len(LOG_CAPTURE.lines)} log lines, {len(KNOWN_SECRETS)} secrets, "
            f"{len(found)} leaks"
        )
    if found:
        if reporter is not None:
            reporter.write_line("secrets found in logs:\n" + "\n".join(found), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="module")
def http01_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def http01(http01_port: int) -> Iterator[Http01Responder]:
    with Http01Responder(http01_port) as responder:
        yield responder


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def platform(
    backend: str, tmp_path_factory: pytest.TempPathFactory, http01_port: int
) -> Iterator[Platform]:
    directory = tmp_path_factory.mktemp(f"certplane-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port)
        yield provision(config, TENANTS)


@pytest.fixture(scope="module")
def server(platform: Platform) -> Iterator[ServerThread]:
    thread = ServerThread(platform.config).start()
    try:
        yield thread
    finally:
        thread.stop()
    guard = thread.sql_guard
    assert guard.checked > 0
    assert not guard.violations, "SQL on tenant tables without tenant_id:\n" + "\n".join(
        guard.violations
    )
