"""An agent configuration for tests: an EAB key from the server, a 0600 key file, a root for
deployed files and a state directory under ``tmp_path``, and one managed certificate."""

from __future__ import annotations

import os
from pathlib import Path

from cptest.server import ServerThread


def write_agent_config(
    tmp_path: Path,
    server: ServerThread,
    *,
    tenant: str,
    directory: str,
    certificate: str,
    report: bool = False,
) -> Path:
    """``agent.toml`` for ``tenant`` with ``certificate`` (a ``[[certificate]]`` block whose
    ``{roots}`` is replaced by the deploy root); returns its path."""
    eab = server.call(lambda: server.provisioner().create_eab(tenant, "agent test"))
    eab_file = tmp_path / "eab.key"
    eab_file.write_text(eab.hmac_key)
    os.chmod(eab_file, 0o600)
    roots, state = tmp_path / "ssl", tmp_path / "state"
    roots.mkdir()
    state.mkdir(mode=0o700)
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[server]
directory = "{directory}"
eab_kid = "{eab.kid}"
eab_hmac_key_file = "{eab_file}"

[agent]
state_dir = "{state}"
roots = ["{roots}"]
report = {"true" if report else "false"}
"""
        + certificate.replace("{roots}", str(roots))
    )
    return config
