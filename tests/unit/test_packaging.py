"""Packaging guards (ARCHITECTURE.md §1): one namespace, nothing generic in site-packages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {
    "server": "certplane.server",
    "ca": "certplane.ca",
    "policy": "certplane.policy",
    "agent": "certplane.agent",
}


def _declared() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for top, dotted in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([dotted, *rel.parts]))
    return found


def test_every_package_directory_is_declared():
    assert _declared() == _on_disk()


def test_package_dir_maps_each_top_level_directory():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    assert mapping == {dotted: top for top, dotted in MAPPED.items()}


def test_generic_names_are_not_importable_from_an_unrelated_directory(tmp_path):
    code = (
        "import importlib.util as u; "
        "print([u.find_spec(n) is None for n in ('server', 'ca', 'policy', 'agent')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[True, True, True, True]"


def test_certplane_itself_is_a_namespace_package():
    assert not (ROOT / "certplane").exists()
    spec = importlib.util.find_spec("certplane.server")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == (ROOT / "server" / "__init__.py").resolve()


def test_nothing_is_named_acme():
    names = {
        p.name for p in ROOT.rglob("acme*.py") if ".venv" not in p.parts and "build" not in p.parts
    }
    assert not {n for n in names if n in ("acme.py",)}
    assert not (ROOT / "acme").exists()
