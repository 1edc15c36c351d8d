"""Configuration: TOML plus CERTPLANE_* overrides, validated once, errors name the key."""

from __future__ import annotations

import pytest

from certplane.server.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "certplane.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    config = load_config(None, environ={})
    assert config.server.listen_port == 14000
    assert config.validation.allowed_networks == ()
    assert config.validation.http01_port == 80
    assert config.validation.localhost_names is False


def test_file_and_environment_overrides(tmp_path):
    path = write(
        tmp_path, '[server]\nlisten_port = 15000\n[acme]\ncaa_identities = ["a.example"]\n'
    )
    env = {
        "CERTPLANE_SERVER__LISTEN_HOST": "::1",
        "CERTPLANE_VALIDATION__ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
        "CERTPLANE_VALIDATION__LOCALHOST_NAMES": "true",
        "CERTPLANE_LOG_LEVEL": "DEBUG",
        "UNRELATED": "x",
    }
    config = load_config(path, environ=env)
    assert config.server.listen_port == 15000
    assert config.server.listen_host == "::1"
    assert config.acme.caa_identities == ("a.example",)
    assert config.validation.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert config.validation.localhost_names is True
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[server]\nlisten_port = 'x'\n", {}, "server.listen_port: expected int"),
        ("[server]\nlisten_port = 70000\n", {}, "server.listen_port: expected a TCP port"),
        ("[server]\nbogus = 1\n", {}, "server.bogus: unknown key"),
        ("", {"CERTPLANE_SERVER__LISTEN_PORT": "eighty"}, "server.listen_port: expected int"),
        ("", {"CERTPLANE_VALIDATION__ALLOWED_NETWORKS": "10.0.0.0/33"}, "allowed_networks"),
        ("[server]\nbase_url = 'ftp://x'\n", {}, "server.base_url"),
        ("[server]\ntls_cert_file = 'a.pem'\n", {}, "tls_key_file"),
        (
            "[validation]\nlocalhost_names = 'yes'\n",
            {},
            "validation.localhost_names: expected bool",
        ),
        ("[validation]\ndns_servers = ['resolver.example:53']\n", {}, "validation.dns_servers"),
        ("[testing]\nnonce_reject_percent = 101\n", {}, "testing.nonce_reject_percent"),
        ("[keystore]\nbackend = 'hsm'\n", {}, "keystore.backend"),
        ("[keystore]\nbackend = 'pkcs11'\n", {}, "keystore.pkcs11.module"),
        ("[keystore.pkcs11]\nmodule = '/nonexistent.so'\n", {}, "keystore.pkcs11.module"),
        (
            "[keystore.pkcs11]\nmodule = '/bin/sh'\n",
            {},
            "keystore.pkcs11.tokens: expected at least one token label",
        ),
        (
            "[keystore.pkcs11]\nmodule = '/bin/sh'\ntokens = ['ca']\npin_source = '1234'\n",
            {},
            "keystore.pkcs11.pin_source",
        ),
        ("[keystore.pkcs11]\ntokens = 'ca'\n", {}, "keystore.pkcs11.tokens: expected a list"),
        ("[ca]\nissuance_deadline_seconds = 0\n", {}, "ca.issuance_deadline_seconds"),
        ("[acme]\nari_retry_after_seconds = 59\n", {}, "acme.ari_retry_after_seconds"),
        ("[acme]\nari_retry_after_seconds = 86401\n", {}, "acme.ari_retry_after_seconds"),
        ("[acme]\nari_explanation_url = 'docs/ari'\n", {}, "acme.ari_explanation_url"),
        ("[limits]\nnew_orders_per_account = '300'\n", {}, "limits.new_orders_per_account"),
        ("[limits]\nnew_accounts_per_tenant = '5/3w'\n", {}, "expected COUNT/PERIOD"),
        ("[limits]\nnew_accounts_per_tenant = '0/3h'\n", {}, "must be positive"),
        ("server = 3\n", {}, "server: expected a table"),
        ("[server\n", {}, "not valid TOML"),
    ],
)
def test_wrong_values_name_the_key(tmp_path, text, env, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(write(tmp_path, text), environ=env)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
