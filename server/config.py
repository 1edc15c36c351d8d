"""Typed configuration: one TOML file plus ``CERTPLANE_*`` environment overrides.

The configuration is validated once, at start. A wrong value names its key and what was expected.
Environment overrides use ``CERTPLANE_<SECTION>__<KEY>`` (for example
``CERTPLANE_SERVER__LISTEN_PORT=15000``); top-level keys are ``CERTPLANE_<KEY>``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CERTPLANE_"


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class ServerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 14000
    # The public base URL every ACME URL is built from; never taken from the Host header.
    base_url: str = "https://127.0.0.1:14000"
    tls_cert_file: str = ""
    tls_key_file: str = ""
    max_body_bytes: int = 65536
    # The body limit of an agent's inventory report (POST /acme/{tenant}/inventory), which
    # carries a whole host's snapshot: up to 2000 certificates (server/ra/inventory_report.py).
    max_inventory_bytes: int = 4 * 1024 * 1024
    run_worker: bool = True
    # How stale this process's view of a tenant (its status) may be; 0 reads it every request.
    tenant_cache_seconds: float = 2.0
    # Reverse proxies (CIDRs) whose X-Forwarded-For is believed: the client address is then its
    # right-most entry that is not itself a trusted proxy. From other peers it is ignored.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///certplane.db"
    echo: bool = False


@dataclass(frozen=True)
class Pkcs11Config:
    """PKCS#11 tokens for CA keys; ``tokens[0]`` holds shared keys, the others are dedicated."""

    module: str = ""
    tokens: tuple[str, ...] = ()
    # file:/path or env:NAME; "{token}" is replaced by the token label. Never the PIN itself.
    pin_source: str = ""
    sessions: int = 4
    # After a lost token, reconnect attempts back off from this delay, doubling up to the max.
    reconnect_first_seconds: float = 0.2
    reconnect_max_seconds: float = 30.0


@dataclass(frozen=True)
class KeystoreConfig:
    master_key_file: str = "master.key"
    master_key_env: str = ""
    # Where new CA keys are generated: "software" (sealed under the master key) or "pkcs11".
    backend: str = "software"
    pkcs11: Pkcs11Config = field(default_factory=Pkcs11Config)


@dataclass(frozen=True)
class AcmeConfig:
    terms_of_service: str = ""
    website: str = ""
    caa_identities: tuple[str, ...] = ()
    nonce_lifetime_seconds: int = 3600
    order_lifetime_seconds: int = 7 * 86400
    pending_authz_lifetime_seconds: int = 7 * 86400
    valid_authz_lifetime_seconds: int = 30 * 86400
    finalize_deadline_seconds: float = 5.0
    orders_page_size: int = 50
    retry_after_seconds: int = 3
    # ACME Renewal Information (RFC 9773 §4.3.1): how often clients should fetch a certificate's
    # renewal window again (its Retry-After; also how long caches may keep the answer).
    ari_retry_after_seconds: int = 6 * 3600
    # A page explaining why a window moved into the past (a revocation, an issuer rotation):
    # the renewal information's explanationURL then; "" leaves it out.
    ari_explanation_url: str = ""


@dataclass(frozen=True)
class CaConfig:
    leaf_validity_days: int = 90
    root_validity_days: int = 3650
    intermediate_validity_days: int = 1825
    key_algorithm: str = "ec-p256"
    organization: str = "certplane"
    # An issuance the CA cannot complete (an HSM that is away) is retried with backoff until
    # this deadline, then the order becomes invalid with the last error.
    issuance_deadline_seconds: float = 600.0
    issuance_retry_first_seconds: float = 5.0
    issuance_retry_max_seconds: float = 120.0


@dataclass(frozen=True)
class LimitsConfig:
    """Rate limits as "COUNT/PERIOD" (PERIOD: a number with s, m, h or d), "" turns one off.
    Each allows bursts of COUNT and refills evenly over PERIOD (GCRA). The limits in
    ``COUNT_LIMITS`` are caps on how many things exist at once: a plain "COUNT".

    ``tiers`` are named sets of limits (``[limits.tiers.NAME]``, the same keys as here); a
    tenant on a tier (``certplane tenant set SLUG --tier NAME``) takes the tier's values over
    these, and its own overrides (``--limit``) over both.
    """

    new_orders_per_account: str = "300/3h"
    new_accounts_per_tenant: str = "500/3h"
    new_accounts_per_ip: str = "50/3h"
    # A tenant quota: certificates issued per period (spent at finalize, refunded on failure).
    certificates_per_tenant: str = ""
    # Pending, unexpired authorizations an account may hold; newOrder is refused at the cap.
    pending_authorizations_per_account: str = "1000"
    # Orders of a tenant being issued (`processing`) at once; finalize is refused at the cap.
    concurrent_issuance_per_tenant: str = "50"
    # Failed challenge validations per identifier and account; while spent, newOrder refuses
    # the identifier.
    failed_validations_per_identifier_per_account: str = "5/1h"
    tiers: dict[str, dict[str, str]] = field(default_factory=dict)


# Limits that cap a count of things at once ("COUNT"), not a rate.
COUNT_LIMITS = frozenset({"pending_authorizations_per_account", "concurrent_issuance_per_tenant"})
# Every limit of [limits] (and of a tier), by its configuration key.
LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(LimitsConfig) if f.name != "tiers")
_TIER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class ValidationConfig:
    allowed_networks: tuple[str, ...] = ()
    http01_port: int = 80
    tlsalpn01_port: int = 443
    dns_servers: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    # RFC 6761 §6.3: resolve names under .localhost to loopback (the demo configuration).
    localhost_names: bool = False


@dataclass(frozen=True)
class ApiConfig:
    """The management API (``/api/v1``): its own listener unless it shares the ACME one."""

    enabled: bool = True
    listen_host: str = "127.0.0.1"
    listen_port: int = 14001
    # Serve /api/v1 on the ACME listener instead (one port behind one load balancer).
    share_acme_listener: bool = False
    # GCRA limit of calls per bearer token ("" turns it off).
    calls_per_token: str = "1200/1m"  # noqa: S105 (a rate, not a secret)
    # How long a new token lives unless the request says otherwise (at most 366 days).
    token_lifetime_days: int = 90
    # How long an Idempotency-Key answer is kept for replay.
    idempotency_hours: int = 24


@dataclass(frozen=True)
class PolicyConfig:
    # The time one CEL rule may run before the decision fails closed.
    cel_time_limit_seconds: float = 0.05


@dataclass(frozen=True)
class WebhooksConfig:
    # Webhooks never reach special-purpose addresses (loopback, private, …) unless listed here.
    allowed_networks: tuple[str, ...] = ()
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class TestingConfig:
    """Hostile knobs for conformance runs (Pebble's approach); all off by default.

    ``nonce_reject_percent`` answers ``badNonce`` to that share of requests with a valid nonce,
    never to a signer's retry right after a rejection (100: every first attempt is rejected).
    ``validation_delay_seconds`` holds each challenge ``processing`` and
    ``finalize_processing_seconds`` each finalized order, before the work starts.
    """

    nonce_reject_percent: int = 0
    validation_delay_seconds: float = 0.0
    finalize_processing_seconds: float = 0.0


@dataclass(frozen=True)
class Config:
    data_dir: str = "."
    log_level: str = "INFO"
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    keystore: KeystoreConfig = field(default_factory=KeystoreConfig)
    acme: AcmeConfig = field(default_factory=AcmeConfig)
    ca: CaConfig = field(default_factory=CaConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    testing: TestingConfig = field(default_factory=TestingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    def data_path(self, name: str) -> Path:
        """A path relative to the data directory (absolute paths stay as they are)."""
        path = Path(name)
        return path if path.is_absolute() else Path(self.data_dir) / path


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the defaults when None), apply environment overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    _apply_env(raw, os.environ if environ is None else environ)
    config: Config = _build(Config, raw, "")
    validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = {f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.type)}
    sections |= {"server", "database", "keystore", "acme", "ca", "validation", "testing", "limits"}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        section, sep, option = key.partition("__")
        if sep and section in sections:
            raw.setdefault(section, {})[option] = _EnvText(value)
        elif not sep:
            raw[key] = _EnvText(value)


class _EnvText(str):
    """A value from the environment: converted by the target type, lists comma-separated."""


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name in raw:
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            values[name] = _build(typing.cast(type[Any], hint), raw[name], key + ".")
        else:
            values[name] = _coerce(raw[name], hint, key)
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    if typing.get_origin(hint) is dict:
        return _table(value, hint, key)
    if typing.get_origin(hint) is tuple:
        items = _split(value) if isinstance(value, _EnvText) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key}: expected a list of strings, got {type(value).__name__}")
        return tuple(_coerce(item, str, key) for item in items)
    if isinstance(value, _EnvText):
        return _from_text(str(value), hint, key)
    return _check_type(value, hint, key)


def _table(value: Any, hint: Any, key: str) -> dict[str, Any]:
    """A TOML table of ``dict[str, V]``: each value coerced to V, its key named in errors."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    item_hint = typing.get_args(hint)[1]
    return {name: _coerce(item, item_hint, f"{key}.{name}") for name, item in value.items()}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _from_text(text: str, hint: Any, key: str) -> Any:
    try:
        if hint is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected {hint.__name__}, got {text!r}") from exc
    return text


def _check_type(value: Any, hint: Any, key: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = hint if isinstance(hint, type) and not isinstance(hint, types.GenericAlias) else str
    if isinstance(value, bool) and expected is not bool:
        raise ConfigError(f"{key}: expected {expected.__name__}, got a boolean")
    if not isinstance(value, expected):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {type(value).__name__}")
    return value


def _check_keystore(keystore: KeystoreConfig) -> None:
    if keystore.backend not in ("software", "pkcs11"):
        raise ConfigError("keystore.backend: expected 'software' or 'pkcs11'")
    p11 = keystore.pkcs11
    if keystore.backend == "pkcs11" or p11.module:
        if not p11.module or not Path(p11.module).is_file():
            raise ConfigError("keystore.pkcs11.module: expected the path of a PKCS#11 library")
        if not p11.tokens:
            raise ConfigError("keystore.pkcs11.tokens: expected at least one token label")
        if not p11.pin_source.startswith(("file:", "env:")):
            raise ConfigError("keystore.pkcs11.pin_source: expected 'file:/path' or 'env:NAME'")
        if p11.sessions < 1:
            raise ConfigError("keystore.pkcs11.sessions: expected at least 1")


def validate(config: Config) -> None:
    """Cross-field checks; each error names the key and what was expected."""
    _check_port("server.listen_port", config.server.listen_port)
    _check_port("validation.http01_port", config.validation.http01_port)
    _check_port("validation.tlsalpn01_port", config.validation.tlsalpn01_port)
    _check_api(config.api, config.server)
    for network in config.webhooks.allowed_networks:
        _check_network(network, "webhooks.allowed_networks")
    if not 0.001 <= config.policy.cel_time_limit_seconds <= 5:
        raise ConfigError("policy.cel_time_limit_seconds: expected 0.001..5 seconds")
    base = config.server.base_url
    if not base.startswith(("http://", "https://")) or base.endswith("/"):
        raise ConfigError("server.base_url: expected an http(s) URL without a trailing slash")
    if bool(config.server.tls_cert_file) != bool(config.server.tls_key_file):
        raise ConfigError("server.tls_cert_file and server.tls_key_file: set both or neither")
    for network in config.validation.allowed_networks:
        _check_network(network)
    for network in config.server.trusted_proxies:
        _check_network(network, "server.trusted_proxies")
    for server in config.validation.dns_servers:
        parse_host_port(server, "validation.dns_servers", default_port=53)
    if not 0 <= config.testing.nonce_reject_percent <= 100:
        raise ConfigError("testing.nonce_reject_percent: expected 0..100")
    if config.server.max_body_bytes < 1 or config.server.max_inventory_bytes < 1:
        raise ConfigError("server.max_body_bytes, server.max_inventory_bytes: expected > 0")
    if not 0 <= config.server.tenant_cache_seconds <= 60:
        raise ConfigError("server.tenant_cache_seconds: expected 0..60 seconds")
    _check_keystore(config.keystore)
    _check_limits(config.limits)
    if config.ca.issuance_deadline_seconds <= 0 or config.ca.issuance_retry_first_seconds <= 0:
        raise ConfigError("ca.issuance_deadline_seconds, ca.issuance_retry_*: expected > 0")
    _check_ari(config.acme)
    if config.ca.leaf_validity_days < 1:
        raise ConfigError("ca.leaf_validity_days: expected a positive number of days")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level: expected one of DEBUG, INFO, WARNING, ERROR")


def _check_ari(acme: AcmeConfig) -> None:
    # RFC 9773 §4.3.2: clients clamp the interval to one minute .. one day.
    if not 60 <= acme.ari_retry_after_seconds <= 86400:
        raise ConfigError("acme.ari_retry_after_seconds: expected 60..86400 seconds")
    url = acme.ari_explanation_url
    if url and not url.startswith(("https://", "http://")):
        raise ConfigError("acme.ari_explanation_url: expected an http(s) URL or nothing")


def _check_api(api: ApiConfig, server: ServerConfig) -> None:
    _check_port("api.listen_port", api.listen_port)
    own_listener = api.enabled and not api.share_acme_listener
    if own_listener and not server.tls_cert_file and not _is_loopback(api.listen_host):
        raise ConfigError(
            "api.listen_host: bearer tokens must not cross a network in clear text; listen on "
            "loopback or configure server.tls_cert_file and server.tls_key_file"
        )
    parse_rate(api.calls_per_token, "api.calls_per_token")
    if not 1 <= api.token_lifetime_days <= 366:
        raise ConfigError("api.token_lifetime_days: expected 1..366")
    if not 1 <= api.idempotency_hours <= 24 * 30:
        raise ConfigError("api.idempotency_hours: expected 1..720")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(key: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"{key}: expected a TCP port 1..65535, got {port}")


def _check_network(text: str, key: str = "validation.allowed_networks") -> None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected CIDR networks, got {text!r}") from exc


def _check_limits(limits: LimitsConfig) -> None:
    """Every limit of [limits] and of each [limits.tiers.NAME], named by its full key."""
    for name in LIMIT_KEYS:
        parse_limit(name, getattr(limits, name), f"limits.{name}")
    for tier, values in limits.tiers.items():
        if not _TIER_NAME.match(tier):
            raise ConfigError(
                f"limits.tiers.{tier}: expected a tier name of 1-32 lowercase letters, digits, "
                "'-' and '_'"
            )
        for name, text in values.items():
            key = f"limits.tiers.{tier}.{name}"
            if name not in LIMIT_KEYS:
                raise ConfigError(f"{key}: unknown limit (known: {', '.join(LIMIT_KEYS)})")
            parse_limit(name, text, key)


def parse_host_port(text: str, key: str, *, default_port: int) -> tuple[str, int]:
    """Parse ``host``, ``host:port``, or ``[v6]:port``."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ConfigError(f"{key}: expected host:port, got {text!r}")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected an IP address, got {host!r}") from exc
    _check_port(key, port)
    return host, port


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_limit(name: str, text: str, key: str) -> tuple[int, int] | int | None:
    """The value of the limit whose configuration key is ``name``: (count, period seconds)
    for a rate, the count for one of ``COUNT_LIMITS``, None when off ("")."""
    return parse_count(text, key) if name in COUNT_LIMITS else parse_rate(text, key)


def parse_count(text: str, key: str) -> int | None:
    """ "COUNT" -> count; "" -> None.

    Raises:
        ConfigError: naming ``key`` and the expected form.
    """
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(f"{key}: expected a positive COUNT like 50, got {text!r}")
    return int(text)


def parse_rate(text: str, key: str) -> tuple[int, int] | None:
    """ "COUNT/PERIOD" -> (count, period seconds); "" -> None.

    Raises:
        ConfigError: naming ``key`` and the expected form.
    """
    if not text:
        return None
    count, sep, period = text.partition("/")
    try:
        if not sep or period[-1:] not in _UNITS:
            raise ValueError(text)
        parsed = int(count), int(period[:-1]) * _UNITS[period[-1]]
    except ValueError:
        raise ConfigError(f"{key}: expected COUNT/PERIOD like 300/3h, got {text!r}") from None
    if parsed[0] < 1 or parsed[1] < 1:
        raise ConfigError(f"{key}: COUNT and PERIOD must be positive")
    return parsed
