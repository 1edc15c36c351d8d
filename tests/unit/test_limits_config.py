"""Limits as configuration: [limits], its tiers and server.trusted_proxies load and fail by key;
a tenant's limits are the configuration's, under its tier's, under its own overrides."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from certplane.policy.ratelimits.gcra import Limit
from certplane.server.config import ConfigError, LimitsConfig, load_config
from certplane.server.model import Tenant, TenantStatus
from certplane.server.ra.limits import Cap, check_override, rate_limits

TIERS = """
[limits]
new_orders_per_account = "300/3h"
certificates_per_tenant = ""
[limits.tiers.small]
certificates_per_tenant = "100/30d"
new_orders_per_account = "50/1h"
pending_authorizations_per_account = "20"
[limits.tiers.unlimited]
new_orders_per_account = ""
concurrent_issuance_per_tenant = ""
"""


def load(tmp_path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "certplane.toml"
    path.write_text(text)
    return load_config(path, environ=env or {})


def test_defaults_of_the_new_limits():
    limits = load_config(None, environ={}).limits
    assert limits.pending_authorizations_per_account == "1000"
    assert limits.concurrent_issuance_per_tenant == "50"
    assert limits.failed_validations_per_identifier_per_account == "5/1h"
    assert limits.tiers == {}
    assert load_config(None, environ={}).server.trusted_proxies == ()


def test_tiers_load_as_tables_of_limits(tmp_path):
    config = load(tmp_path, TIERS + '[server]\ntrusted_proxies = ["10.0.0.0/8", "fd00::/8"]\n')
    assert config.limits.tiers == {
        "small": {
            "certificates_per_tenant": "100/30d",
            "new_orders_per_account": "50/1h",
            "pending_authorizations_per_account": "20",
        },
        "unlimited": {"new_orders_per_account": "", "concurrent_issuance_per_tenant": ""},
    }
    assert config.server.trusted_proxies == ("10.0.0.0/8", "fd00::/8")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[limits.tiers.small]\nnew_orders_per_account = '50'\n", {},
         "limits.tiers.small.new_orders_per_account: expected COUNT/PERIOD"),
        ("[limits.tiers.small]\nnew_orders_per_account = 50\n", {},
         "limits.tiers.small.new_orders_per_account: expected str, got int"),
        ("[limits.tiers.small]\norders_per_year = '1/1d'\n", {},
         "limits.tiers.small.orders_per_year: unknown limit"),
        ("[limits.tiers.small]\ntiers = '1/1d'\n", {}, "limits.tiers.small.tiers: unknown limit"),
        ("[limits.tiers.small]\nconcurrent_issuance_per_tenant = '5/1h'\n", {},
         "limits.tiers.small.concurrent_issuance_per_tenant: expected a positive COUNT"),
        ("[limits.tiers.small]\npending_authorizations_per_account = '0'\n", {},
         "limits.tiers.small.pending_authorizations_per_account: expected a positive COUNT"),
        ("[limits.tiers.small]\nfailed_validations_per_identifier_per_account = '0/1h'\n", {},
         "limits.tiers.small.failed_validations_per_identifier_per_account: COUNT and PERIOD"),
        ("[limits.tiers]\nsmall = '50/1h'\n", {}, "limits.tiers.small: expected a table"),
        ("[limits]\ntiers = 3\n", {}, "limits.tiers: expected a table"),
        ("[limits.tiers.Small]\n", {}, "limits.tiers.Small: expected a tier name"),
        ("[limits.tiers.'a b']\n", {}, "limits.tiers.a b: expected a tier name"),
        ("[limits.tiers.x123456789012345678901234567890123]\n", {}, "expected a tier name"),
        ("[limits]\nconcurrent_issuance_per_tenant = '５'\n", {},
         "limits.concurrent_issuance_per_tenant: expected a positive COUNT"),
        ("[limits]\npending_authorizations_per_account = '-1'\n", {},
         "limits.pending_authorizations_per_account: expected a positive COUNT"),
        ("[limits]\nfailed_validations_per_identifier_per_account = '5'\n", {},
         "limits.failed_validations_per_identifier_per_account: expected COUNT/PERIOD"),
        ("", {"CERTPLANE_LIMITS__CONCURRENT_ISSUANCE_PER_TENANT": "lots"},
         "limits.concurrent_issuance_per_tenant: expected a positive COUNT"),
        ("", {"CERTPLANE_LIMITS__TIERS": "small"}, "limits.tiers: expected a table"),
        ("[server]\ntrusted_proxies = ['10.0.0.0/33']\n", {},
         "server.trusted_proxies: expected CIDR networks, got '10.0.0.0/33'"),
        ("[server]\ntrusted_proxies = '10.0.0.0/8'\n", {},
         "server.trusted_proxies: expected a list"),
        ("", {"CERTPLANE_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"},
         "server.trusted_proxies: expected CIDR networks, got 'proxy.example'"),
    ],
)  # fmt: skip
def test_wrong_limits_name_the_key(tmp_path, text, env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, text, env)


def test_the_environment_sets_the_new_limits(tmp_path):
    env = {
        "CERTPLANE_LIMITS__CONCURRENT_ISSUANCE_PER_TENANT": "7",
        "CERTPLANE_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1/32",
    }
    config = load(tmp_path, "", env)
    assert config.limits.concurrent_issuance_per_tenant == "7"
    assert config.server.trusted_proxies == ("10.0.0.0/8", "192.0.2.1/32")


def _tenant(tier: str = "", **overrides: str) -> Tenant:
    return Tenant(
        id="t1",
        slug="t",
        display_name="T",
        status=TenantStatus.ACTIVE,
        external_account_required=False,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        limit_overrides={name.replace("_", "-"): text for name, text in overrides.items()},
        tier=tier,
    )


CONFIG = LimitsConfig(
    new_orders_per_account="300/3h",
    certificates_per_tenant="",
    pending_authorizations_per_account="1000",
    tiers={
        "small": {
            "certificates_per_tenant": "100/30d",
            "new_orders_per_account": "50/1h",
            "pending_authorizations_per_account": "20",
        },
        "unlimited": {"new_orders_per_account": "", "concurrent_issuance_per_tenant": ""},
    },
)


def _orders(count: int, hours: int) -> Limit:
    return Limit("new-orders-per-account", count, timedelta(hours=hours), count)


def test_configuration_then_tier_then_override():
    limits = rate_limits(CONFIG)
    plain = limits.for_tenant(_tenant())
    assert plain.new_orders_per_account == _orders(300, 3)
    assert plain.certificates_per_tenant is None
    assert plain.concurrent_issuance_per_tenant == Cap("concurrent-issuance-per-tenant", 50)
    assert plain.source("new_orders_per_account") == "config"

    small = limits.for_tenant(_tenant("small"))
    assert small.new_orders_per_account == _orders(50, 1)
    assert small.certificates_per_tenant == Limit(
        "certificates-per-tenant", 100, timedelta(days=30), 100
    )
    assert small.pending_authorizations_per_account == Cap("pending-authorizations-per-account", 20)
    assert small.new_accounts_per_tenant == plain.new_accounts_per_tenant  # not in the tier
    assert small.source("certificates_per_tenant") == "tier:small"
    assert small.source("new_accounts_per_tenant") == "config"

    mine = limits.for_tenant(
        _tenant("small", new_orders_per_account="7/1d", pending_authorizations_per_account="")
    )
    assert mine.new_orders_per_account == Limit("new-orders-per-account", 7, timedelta(days=1), 7)
    assert mine.pending_authorizations_per_account is None  # off for this tenant
    assert mine.certificates_per_tenant == small.certificates_per_tenant
    assert mine.source("new_orders_per_account") == "override"
    assert mine.source("pending_authorizations_per_account") == "override"
    assert mine.source("certificates_per_tenant") == "tier:small"


def test_a_tier_can_turn_limits_off_and_an_override_back_on():
    limits = rate_limits(CONFIG)
    off = limits.for_tenant(_tenant("unlimited"))
    assert off.new_orders_per_account is None and off.concurrent_issuance_per_tenant is None
    on = limits.for_tenant(_tenant("unlimited", concurrent_issuance_per_tenant="3"))
    assert on.concurrent_issuance_per_tenant == Cap("concurrent-issuance-per-tenant", 3)


def test_an_unknown_tier_or_no_tenant_gets_the_configuration():
    limits = rate_limits(CONFIG)
    assert limits.for_tenant(_tenant("gone")) == limits.for_tenant(_tenant())
    assert limits.for_tenant(_tenant("gone")).source("new_orders_per_account") == "config"
    assert limits.for_tenant(None) is limits


def test_overrides_are_checked_by_the_kind_of_limit():
    check_override("concurrent-issuance-per-tenant", "5")
    check_override("failed-validations-per-identifier-per-account", "3/10m")
    check_override("pending-authorizations-per-account", "")
    with pytest.raises(ConfigError, match="expected a positive COUNT"):
        check_override("concurrent-issuance-per-tenant", "5/1h")
    with pytest.raises(ConfigError, match="expected COUNT/PERIOD"):
        check_override("failed-validations-per-identifier-per-account", "5")
    with pytest.raises(KeyError):
        check_override("orders-per-year", "5/1d")
