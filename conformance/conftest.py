"""The conformance suite's target: ``--target certplane|pebble`` or ``--directory URL``.

Known Pebble differences live in ``pebble-known.toml``; those tests are strict expected failures
when the target is Pebble. Tests marked ``target_bug(name, reason)`` are strict expected failures
on that target only.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from cptest.conf_target import (  # noqa: E402
    Eab,
    Target,
    certplane_target,
    external_target,
    pebble_target,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--target", choices=("certplane", "pebble"), help="start this target")
    group.addoption("--directory", help="directory URL of an external target")
    group.addoption("--ca-bundle", help="CA bundle for the external target's TLS")
    group.addoption("--eab-kid", help="EAB key id for the external target")
    group.addoption("--eab-hmac-key", help="EAB HMAC key (base64url)")
    group.addoption("--second-tenant-directory", help="another tenant's directory URL")
    group.addoption("--report", help="write each test's outcome to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "target_bug(target, reason): strict xfail on that target")
    config.addinivalue_line("markers", "tenancy: needs a second tenant directory")


def target_name(config: pytest.Config) -> str:
    if config.getoption("--directory"):
        return "external"
    return config.getoption("--target") or "certplane"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name = target_name(config)
    known: dict[str, str] = {}
    if name == "pebble":
        with (HERE / "pebble-known.toml").open("rb") as fh:
            known = {entry["id"]: entry["reason"] for entry in tomllib.load(fh)["known"]}
    seen = set()
    for item in items:
        test_id = item.nodeid.split("conformance/", 1)[-1]
        if test_id in known:
            seen.add(test_id)
            item.add_marker(pytest.mark.xfail(strict=True, reason="pebble: " + known[test_id]))
        for mark in item.iter_markers("target_bug"):
            if mark.args[0] == name:
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.args[1]))
    stale = set(known) - seen
    if stale and len(items) > len(known):
        # Only a full run can tell: a partial run (-k, one file) collects fewer tests.
        full = {item.nodeid.split("conformance/", 1)[-1].split("::")[0] for item in items}
        stale = {s for s in stale if s.split("::")[0] in full}
        if stale:
            raise pytest.UsageError(f"pebble-known.toml names unknown tests: {sorted(stale)}")


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Target]:
    name = target_name(pytestconfig)
    if name == "external":
        kid = pytestconfig.getoption("--eab-kid")
        key = pytestconfig.getoption("--eab-hmac-key")
        with external_target(
            pytestconfig.getoption("--directory"),
            pytestconfig.getoption("--ca-bundle"),
            Eab(kid, key) if kid and key else None,
            pytestconfig.getoption("--second-tenant-directory"),
        ) as running:
            yield running
    elif name == "pebble":
        with pebble_target() as running:
            yield running
    else:
        with certplane_target() as running:
            yield running


@pytest.fixture(scope="session")
def hostile(pytestconfig: pytest.Config) -> Iterator[Target]:
    """A second certplane with its hostile test knobs on (nonces rejected, validation and
    finalization delayed); client runs use it beside the plain target. Other targets skip."""
    if target_name(pytestconfig) != "certplane":
        pytest.skip("hostile knobs are certplane's [testing] settings")
    with certplane_target(hostile=True) as running:
        yield running


@pytest.fixture(params=["plain", "hostile"])
def server(request: pytest.FixtureRequest, target: Target) -> Target:
    """The target, and (for certplane) the same server with its hostile knobs on."""
    if request.param == "plain":
        return target
    hostile: Target = request.getfixturevalue("hostile")
    return hostile


@pytest.fixture
def second(target: Target) -> str:
    """Another tenant's directory URL (tenancy tests skip without one)."""
    if target.second_directory is None:
        pytest.skip(f"{target.name} has no second tenant directory (--second-tenant-directory)")
    return target.second_directory


_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record one outcome per test for ``--report`` (passed, failed, xfailed or skipped)."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        _OUTCOMES[report.nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--report")
    if path:
        target = session.config.getoption("--target") or "external"
        Path(path).write_text(json.dumps({"target": target, "outcomes": _OUTCOMES}, indent=1))
