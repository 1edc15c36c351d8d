"""A server with its management API on its own listener, per database backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cptest.apiclient import ApiClient
from cptest.databases import database_url
from cptest.server import Platform, ServerThread, make_config, provision


@pytest.fixture(scope="module")
def api_platform(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    directory = tmp_path_factory.mktemp(f"api-{backend}")
    with database_url(backend, directory) as url:
        yield provision(make_config(directory, url), {"alpha": True, "beta": True})


@pytest.fixture(scope="module")
def api_server(api_platform: Platform) -> Iterator[ServerThread]:
    thread = ServerThread(api_platform.config).start()
    try:
        yield thread
    finally:
        thread.stop()
    assert not thread.sql_guard.violations, "\n".join(thread.sql_guard.violations)


@pytest.fixture(scope="module")
def as_role(api_server: ServerThread) -> Callable[..., ApiClient]:
    """A client holding a fresh token: ``as_role("approver", tenant="alpha", name="ann")``."""

    def _client(*roles: str, tenant: str | None = None, name: str | None = None) -> ApiClient:
        principal = name or f"{'-'.join(roles)}@{tenant or 'platform'}"
        return ApiClient(api_server.api_url, api_server.token(principal, *roles, tenant=tenant))

    return _client
