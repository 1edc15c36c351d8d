"""Shared fixtures: a provisioned certplane on SQLite and PostgreSQL, served on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cptest.databases import PG_HELP, database_url, postgres_available  # noqa: E402
from cptest.net import free_port  # noqa: E402
from cptest.responders import Http01Responder  # noqa: E402
from cptest.server import Platform, ServerThread, make_config, provision  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
TENANTS = {"alpha": True, "beta": True, "open": False}


def pytest_sessionstart(session: pytest.Session) -> None:
    if not postgres_available():
        pytest.exit(PG_HELP, returncode=3)


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
