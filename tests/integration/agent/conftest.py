"""A certplane with an EAB tenant "fleet" and pebble-challtestsrv as its only DNS, per
database backend, for the agent's suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cptest.challtestsrv import ChallTestSrv
from cptest.databases import database_url
from cptest.server import ServerThread, make_config, provision


@pytest.fixture(scope="module")
def lab() -> Iterator[ChallTestSrv]:
    with ChallTestSrv() as dns:
        yield dns


@pytest.fixture(scope="module")
def certplane(backend, tmp_path_factory, http01_port, lab) -> Iterator[tuple[ServerThread, dict]]:
    directory = tmp_path_factory.mktemp(f"agent-{backend}")
    with database_url(backend, directory) as url:
        config = make_config(directory, url, http01_port=http01_port, dns_servers=(lab.dns_server,))
        platform = provision(config, {"fleet": True})
        server = ServerThread(config).start()
        try:
            yield server, {"eab": platform.eab["fleet"], "directory": platform.directory("fleet")}
        finally:
            server.stop()
        assert not server.sql_guard.violations, "\n".join(server.sql_guard.violations)
