"""``certplane tenant set SLUG --tier NAME|default`` and the new limits' overrides, run as a
user would, against a configuration with [limits.tiers]."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cptest.databases import database_url

CLI = str(Path(sys.executable).parent / "certplane")
CONFIG = """
data_dir = "{data_dir}"
[database]
url = "{url}"
[server]
base_url = "https://acme.example.test"
[limits.tiers.small]
new_orders_per_account = "50/1h"
[limits.tiers.big]
certificates_per_tenant = "10000/30d"
"""


def test_tenant_tiers_from_the_command_line(tmp_path):
    """On SQLite: one UPDATE of the tenant row, the same statement on both backends."""
    config = tmp_path / "certplane.toml"
    with database_url("sqlite", tmp_path) as url:
        config.write_text(CONFIG.format(data_dir=tmp_path, url=url))

        def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CERTPLANE_")}
            result = subprocess.run(
                [CLI, "--config", str(config), *args],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            if check:
                assert result.returncode == 0, result.stderr
            return result

        cli("db", "upgrade")
        cli("ca", "init")
        cli("tenant", "create", "shop", "--no-eab")
        assert json.loads(cli("--json", "tenant", "show", "shop").stdout)["tier"] == ""
        human = cli("tenant", "set", "shop", "--tier", "small").stdout
        assert "tier: small;" in human
        shown = json.loads(cli("--json", "tenant", "show", "shop").stdout)
        assert shown["tier"] == "small"
        assert "tier: small" in cli("tenant", "show", "shop").stdout

        unknown = cli("tenant", "set", "shop", "--tier", "platinum", "--aia-ocsp", "off",
                      check=False)  # fmt: skip
        assert unknown.returncode == 1
        assert "unknown tier 'platinum' (known: big, small)" in unknown.stderr
        unchanged = json.loads(cli("--json", "tenant", "show", "shop").stdout)
        assert unchanged["tier"] == "small" and unchanged["aia_ocsp"] is True

        both = json.loads(
            cli("--json", "tenant", "set", "shop", "--tier", "big",
                "--limit", "concurrent-issuance-per-tenant=5",
                "--limit", "failed-validations-per-identifier-per-account=3/10m").stdout
        )  # fmt: skip
        assert both["tier"] == "big"
        assert both["limit_overrides"] == {
            "concurrent-issuance-per-tenant": "5",
            "failed-validations-per-identifier-per-account": "3/10m",
        }
        rate_for_cap = cli("tenant", "set", "shop", "--limit",
                           "pending-authorizations-per-account=5/1h", check=False)  # fmt: skip
        assert rate_for_cap.returncode == 1
        assert "expected a positive COUNT" in rate_for_cap.stderr
        failures = "failed-validations-per-identifier-per-account"
        cap_for_rate = cli("tenant", "set", "shop", "--limit", f"{failures}=5", check=False)
        assert cap_for_rate.returncode == 1 and "expected COUNT/PERIOD" in cap_for_rate.stderr
        back = json.loads(cli("--json", "tenant", "set", "shop", "--tier", "default").stdout)
        assert back["tier"] == ""
        assert "tier: none;" in cli("tenant", "set", "shop").stdout
