"""The agent's configuration: a full example loads; every check names its key path and says what
is expected; all problems are reported at once."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certplane.agent.config import (
    AgentConfig,
    ConfigError,
    Dns01Hook,
    Dns01Rfc2136,
    Http01Standalone,
    Http01Webroot,
    TlsAlpn01Standalone,
    explain,
    load_config,
    parse_config,
)
from certplane.agent.store import Owner


@dataclass
class Host:
    """A fake host under tmp_path: two roots, a state directory and two secret files."""

    tmp: Path
    ssl: Path
    www: Path
    state: Path
    eab: Path
    tsig: Path


@pytest.fixture
def host(tmp_path: Path) -> Host:
    ssl, www = tmp_path / "etc/ssl/certplane", tmp_path / "var/www/acme"
    ssl.mkdir(parents=True)
    www.mkdir(parents=True)
    eab, tsig = tmp_path / "eab.key", tmp_path / "tsig.key"
    for secret in (eab, tsig):
        secret.write_bytes(b"c2VjcmV0\n")
        secret.chmod(0o600)
    return Host(tmp_path, ssl, www, tmp_path / "state", eab, tsig)


FULL_EXAMPLE = """
[server]
directory = "https://acme.example.net/acme/acme-corp/directory"
eab_kid = "kid-123"
eab_hmac_key_file = "{eab}"
contact = ["ops@example.com", "mailto:pki@example.com"]

[agent]
state_dir = "{state}"
roots = ["{ssl}", "{www}"]
report = false

[agent.discovery]
cert_paths = ["/etc/ssl/certs", "/etc/pki/tls/certs"]
nginx_conf = "/etc/nginx/nginx.conf"
apache_conf = ["/etc/apache2/apache2.conf"]

[[certificate]]
name = "www"
names = ["WWW.Example.com.", "example.com"]
reload = ["systemctl", "reload", "nginx"]
[certificate.challenge]
type = "http-01"
mode = "webroot"
webroot = "{www}"
[certificate.deploy]
fullchain = "{ssl}/www/fullchain.pem"
key = "{ssl}/www/key.pem"
owner = "root:root"
mode = "0640"
[[certificate.verify]]
host = "127.0.0.1"
port = 8443
sni = "www.example.com"
[[certificate.verify]]
host = "www.example.com"
[certificate.hooks]
pre = ["/usr/local/bin/pre"]
post = ["/usr/local/bin/post", "--done"]
[certificate.renew]
before_expiry_days = 30

[[certificate]]
name = "wild"
names = ["*.example.org", "example.org"]
key_type = "rsa-3072"
[certificate.challenge]
type = "dns-01"
mode = "rfc2136"
server = "192.0.2.53"
zone = "example.org"
tsig_key_name = "certplane."
tsig_algorithm = "hmac-sha512"
tsig_secret_file = "{tsig}"
[certificate.deploy]
cert = "{ssl}/wild/cert.pem"
chain = "{ssl}/wild/chain.pem"
key = "{ssl}/wild/key.pem"
key_mode = "0400"

[[certificate]]
name = "hooked"
names = ["api.example.com"]
key_type = "ec-p384"
[certificate.challenge]
type = "dns-01"
mode = "hook"
hook = ["/usr/local/bin/dns-hook", "--zone", "example.com"]
[certificate.deploy]
fullchain = "{ssl}/api/fullchain.pem"
key = "{ssl}/api/key.pem"

[[certificate]]
name = "ip"
names = ["192.0.2.10", "2001:DB8::10"]
[certificate.challenge]
type = "tls-alpn-01"
mode = "standalone"
port = 10443
address = "::"
[certificate.deploy]
fullchain = "{ssl}/ip/fullchain.pem"
key = "{ssl}/ip/key.pem"

[[certificate]]
name = "standalone"
names = ["plain.example.com"]
[certificate.challenge]
type = "http-01"
mode = "standalone"
[certificate.deploy]
fullchain = "{ssl}/plain/fullchain.pem"
key = "{ssl}/plain/key.pem"
"""


def write_example(host: Host) -> Path:
    text = FULL_EXAMPLE.format(
        eab=host.eab, tsig=host.tsig, state=host.state, ssl=host.ssl, www=host.www
    )
    path = host.tmp / "agent.toml"
    path.write_text(text)
    return path


def test_the_full_example_loads(host: Host):
    config = load_config(write_example(host))
    assert isinstance(config, AgentConfig)
    assert config.server.directory == "https://acme.example.net/acme/acme-corp/directory"
    assert config.server.eab_kid == "kid-123"
    assert config.server.eab_hmac_key_file == host.eab
    assert config.server.contact == ("mailto:ops@example.com", "mailto:pki@example.com")
    assert config.agent.state_dir == host.state
    assert config.agent.roots == (host.ssl, host.www)
    assert config.agent.report is False
    assert config.agent.discovery.nginx_conf == (Path("/etc/nginx/nginx.conf"),)
    assert len(config.agent.discovery.cert_paths) == 2
    assert [c.name for c in config.certificates] == ["www", "wild", "hooked", "ip", "standalone"]


def test_the_full_example_certificates(host: Host):
    www, wild, hooked, ip, standalone = load_config(write_example(host)).certificates
    assert www.names == ("www.example.com", "example.com")  # normalised
    assert www.key_type == "ec-p256"
    assert www.challenge == Http01Webroot(host.www)
    assert www.deploy.fullchain == host.ssl / "www/fullchain.pem"
    assert www.deploy.cert is None
    assert (www.deploy.owner, www.deploy.mode, www.deploy.key_mode) == (Owner(0, 0), 0o640, 0o600)
    assert www.reload == ("systemctl", "reload", "nginx")
    assert [(v.host, v.port, v.sni) for v in www.verify] == [
        ("127.0.0.1", 8443, "www.example.com"),
        ("www.example.com", 443, None),
    ]
    assert www.hooks.pre == ("/usr/local/bin/pre",)
    assert www.hooks.post == ("/usr/local/bin/post", "--done")
    assert www.before_expiry_days == 30
    assert wild.challenge == Dns01Rfc2136(
        "192.0.2.53", "example.org", "certplane.", host.tsig, "hmac-sha512", 53
    )
    assert wild.deploy.key_mode == 0o400
    assert set(wild.deploy.files()) == {"cert", "chain", "key"}
    assert hooked.challenge == Dns01Hook(("/usr/local/bin/dns-hook", "--zone", "example.com"))
    assert ip.names == ("192.0.2.10", "2001:db8::10")
    assert ip.challenge == TlsAlpn01Standalone(10443, "::")
    assert standalone.challenge == Http01Standalone(80, "")
    assert standalone.reload is None and standalone.before_expiry_days is None


# -- every check, with its key path ---------------------------------------------------------------


def minimal(host: Host) -> dict[str, Any]:
    """A small valid document to break one key at a time."""
    return {
        "server": {"directory": "https://acme.example.net/directory"},
        "agent": {"state_dir": str(host.state), "roots": [str(host.ssl), str(host.www)]},
        "certificate": [
            {
                "name": "www",
                "names": ["www.example.com"],
                "challenge": {"type": "http-01", "mode": "webroot", "webroot": str(host.www)},
                "deploy": {
                    "fullchain": str(host.ssl / "www.pem"),
                    "key": str(host.ssl / "www.key"),
                },
            }
        ],
    }


def test_the_minimal_document_is_valid(host: Host):
    config = parse_config(minimal(host))
    assert config.agent.report is True
    assert config.certificates[0].deploy.mode == 0o644


def problems(raw: dict[str, Any], **kwargs: Any) -> tuple[tuple[str, str], ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, **kwargs)
    return info.value.errors


Edit = Callable[[dict[str, Any], Host], None]


def cert0(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["certificate"][0]


def second_certificate(raw: dict[str, Any], host: Host, **changes: Any) -> None:
    other = copy.deepcopy(cert0(raw))
    other.update(name="api", names=["api.example.com"])
    other["deploy"] = {"fullchain": str(host.ssl / "api.pem"), "key": str(host.ssl / "api.key")}
    other.update(changes)
    raw["certificate"].append(other)


def rfc2136(host: Host, **changes: Any) -> dict[str, Any]:
    table = {
        "type": "dns-01",
        "mode": "rfc2136",
        "server": "192.0.2.53",
        "zone": "example.com",
        "tsig_key_name": "k.",
        "tsig_secret_file": str(host.tsig),
    }
    table.update(changes)
    return table


CASES: list[tuple[str, Edit, str, str]] = [
    # [server]
    ("no server table", lambda r, h: r.pop("server"), "server", "missing"),
    (
        "http to a public host",
        lambda r, h: r["server"].update(directory="http://acme.example.net/dir"),
        "server.directory",
        "plain http is allowed only to a loopback address",
    ),
    (
        "not a URL",
        lambda r, h: r["server"].update(directory="acme.example.net"),
        "server.directory",
        "expected an https:// URL",
    ),
    (
        "EAB key inline",
        lambda r, h: r["server"].update(eab_kid="k", eab_hmac_key="c2VjcmV0"),
        "server.eab_hmac_key",
        "never write a secret inline",
    ),
    (
        "EAB kid without key file",
        lambda r, h: r["server"].update(eab_kid="k"),
        "server.eab_kid",
        "give both eab_kid and eab_hmac_key_file",
    ),
    (
        "EAB key file missing",
        lambda r, h: r["server"].update(eab_kid="k", eab_hmac_key_file=str(h.tmp / "nope")),
        "server.eab_hmac_key_file",
        "No such file",
    ),
    (
        "EAB key file relative",
        lambda r, h: r["server"].update(eab_kid="k", eab_hmac_key_file="eab.key"),
        "server.eab_hmac_key_file",
        "expected an absolute path",
    ),
    (
        "CA bundle missing",
        lambda r, h: r["server"].update(ca_bundle=str(h.tmp / "ca.pem")),
        "server.ca_bundle",
        "is not a readable file",
    ),
    (
        "contact not an email",
        lambda r, h: r["server"].update(contact=["ops@example.com", "ops"]),
        "server.contact[1]",
        "expected an email address",
    ),
    (
        "unknown server key",
        lambda r, h: r["server"].update(directroy="x"),
        "server.directroy",
        "unknown key; expected one of: ca_bundle, contact, directory",
    ),
    # [agent]
    ("no agent table", lambda r, h: r.pop("agent"), "agent", "missing"),
    (
        "roots empty",
        lambda r, h: r["agent"].update(roots=[]),
        "agent.roots",
        "the directories the agent may write to",
    ),
    (
        "root relative",
        lambda r, h: r["agent"].update(roots=[str(h.ssl), "var/www"]),
        "agent.roots[1]",
        "expected an absolute path (starting with '/'), got 'var/www'",
    ),
    (
        "root missing",
        lambda r, h: r["agent"].update(roots=[str(h.ssl), str(h.www), str(h.tmp / "no")]),
        "agent.roots[2]",
        "is not an existing directory",
    ),
    (
        "state_dir with ..",
        lambda r, h: r["agent"].update(state_dir=f"{h.tmp}/../state"),
        "agent.state_dir",
        "must not contain '..'",
    ),
    (
        "report not a boolean",
        lambda r, h: r["agent"].update(report="yes"),
        "agent.report",
        "expected true or false, got a string",
    ),
    (
        "discovery path relative",
        lambda r, h: r["agent"].update(discovery={"nginx_conf": "nginx.conf"}),
        "agent.discovery.nginx_conf[0]",
        "expected an absolute path",
    ),
    (
        "discovery unknown key",
        lambda r, h: r["agent"].update(discovery={"haproxy_conf": "/etc/haproxy"}),
        "agent.discovery.haproxy_conf",
        "unknown key",
    ),
    # [[certificate]]: names and ids
    (
        "duplicate certificate names",
        lambda r, h: second_certificate(r, h, name="www"),
        "certificate[1].name",
        "'www' is already the name of certificate[0]",
    ),
    (
        "certificate name not an id",
        lambda r, h: cert0(r).update(name="../www"),
        "certificate[0].name",
        "expected an id",
    ),
    (
        "no names",
        lambda r, h: cert0(r).update(names=[]),
        "certificate[0].names",
        "at least one DNS name or IP address",
    ),
    (
        "bad DNS name",
        lambda r, h: cert0(r).update(names=["www.example.com", "bad_name.example.com"]),
        "certificate[0].names[1]",
        "not a valid DNS name or IP address: DNS label has a character other than",
    ),
    (
        "name listed twice",
        lambda r, h: cert0(r).update(names=["www.example.com", "WWW.example.com."]),
        "certificate[0].names[1]",
        "is listed twice",
    ),
    (
        "wildcard without dns-01",
        lambda r, h: cert0(r).update(names=["*.example.com"]),
        "certificate[0].names[0]",
        'needs challenge type "dns-01"',
    ),
    (
        "IP address with dns-01",
        lambda r, h: cert0(r).update(names=["192.0.2.1"], challenge=rfc2136(h)),
        "certificate[0].names[0]",
        "cannot be validated by dns-01",
    ),
    (
        "key type unknown",
        lambda r, h: cert0(r).update(key_type="ed25519"),
        "certificate[0].key_type",
        'expected one of "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"',
    ),
    (
        "unknown certificate key",
        lambda r, h: cert0(r).update(nmaes=["x"]),
        "certificate[0].nmaes",
        "unknown key",
    ),
    # challenges
    (
        "challenge missing",
        lambda r, h: cert0(r).pop("challenge"),
        "certificate[0].challenge",
        "missing; expected a table",
    ),
    (
        "challenge type unknown",
        lambda r, h: cert0(r).update(challenge={"type": "http-02", "mode": "webroot"}),
        "certificate[0].challenge.type",
        'expected one of "http-01", "dns-01", "tls-alpn-01"',
    ),
    (
        "mode not for the type",
        lambda r, h: cert0(r).update(challenge={"type": "tls-alpn-01", "mode": "webroot"}),
        "certificate[0].challenge.mode",
        'expected one of "standalone"',
    ),
    (
        "webroot outside the roots",
        lambda r, h: cert0(r)["challenge"].update(webroot=str(h.tmp)),
        "certificate[0].challenge.webroot",
        "outside every root in agent.roots",
    ),
    (
        "webroot missing",
        lambda r, h: cert0(r)["challenge"].pop("webroot"),
        "certificate[0].challenge.webroot",
        "missing; expected an absolute path",
    ),
    (
        "key of another mode",
        lambda r, h: cert0(r)["challenge"].update(port=80),
        "certificate[0].challenge.port",
        "unknown key; expected one of: mode, type, webroot",
    ),
    (
        "port zero",
        lambda r, h: cert0(r).update(
            challenge={"type": "http-01", "mode": "standalone", "port": 0}
        ),
        "certificate[0].challenge.port",
        "expected an integer from 1 to 65535, got 0",
    ),
    (
        "port too high",
        lambda r, h: cert0(r).update(
            challenge={"type": "tls-alpn-01", "mode": "standalone", "port": 65536}
        ),
        "certificate[0].challenge.port",
        "expected an integer from 1 to 65535, got 65536",
    ),
    (
        "port a boolean",
        lambda r, h: cert0(r).update(
            challenge={"type": "http-01", "mode": "standalone", "port": True}
        ),
        "certificate[0].challenge.port",
        "got a boolean",
    ),
    (
        "listen address not an IP",
        lambda r, h: cert0(r).update(
            challenge={"type": "http-01", "mode": "standalone", "address": "localhost"}
        ),
        "certificate[0].challenge.address",
        "expected an IP address to listen on",
    ),
    (
        "rfc2136 zone missing",
        lambda r, h: cert0(r).update(
            challenge={k: v for k, v in rfc2136(h).items() if k != "zone"}
        ),
        "certificate[0].challenge.zone",
        "missing",
    ),
    (
        "rfc2136 zone invalid",
        lambda r, h: cert0(r).update(challenge=rfc2136(h, zone="exa mple.com")),
        "certificate[0].challenge.zone",
        "is not a DNS zone name",
    ),
    (
        "rfc2136 TSIG secret inline",
        lambda r, h: cert0(r).update(challenge=rfc2136(h, tsig_secret="c2VjcmV0")),
        "certificate[0].challenge.tsig_secret",
        "name that file with 'tsig_secret_file'",
    ),
    (
        "rfc2136 TSIG algorithm unknown",
        lambda r, h: cert0(r).update(challenge=rfc2136(h, tsig_algorithm="hmac-md5")),
        "certificate[0].challenge.tsig_algorithm",
        'expected one of "hmac-sha256"',
    ),
    (
        "rfc2136 port out of range",
        lambda r, h: cert0(r).update(challenge=rfc2136(h, port=-1)),
        "certificate[0].challenge.port",
        "from 1 to 65535",
    ),
    (
        "dns hook as a shell string",
        lambda r, h: cert0(r).update(
            challenge={"type": "dns-01", "mode": "hook", "hook": "/bin/hook $NAME"}
        ),
        "certificate[0].challenge.hook",
        "never a shell string",
    ),
    (
        "dns hook missing",
        lambda r, h: cert0(r).update(challenge={"type": "dns-01", "mode": "hook"}),
        "certificate[0].challenge.hook",
        "missing; expected an argv list",
    ),
    # deploy
    (
        "deploy missing",
        lambda r, h: cert0(r).pop("deploy"),
        "certificate[0].deploy",
        "missing",
    ),
    (
        "key missing",
        lambda r, h: cert0(r)["deploy"].pop("key"),
        "certificate[0].deploy.key",
        "missing; expected an absolute path",
    ),
    (
        "neither cert nor fullchain",
        lambda r, h: cert0(r)["deploy"].pop("fullchain"),
        "certificate[0].deploy",
        "expected 'cert' or 'fullchain' (or both) besides 'key'",
    ),
    (
        "deploy path relative",
        lambda r, h: cert0(r)["deploy"].update(cert="certs/www.pem"),
        "certificate[0].deploy.cert",
        "expected an absolute path",
    ),
    (
        "deploy path outside the roots",
        lambda r, h: cert0(r)["deploy"].update(chain=str(h.tmp / "chain.pem")),
        "certificate[0].deploy.chain",
        "outside every root in agent.roots",
    ),
    (
        "deploy path escaping with ..",
        lambda r, h: cert0(r)["deploy"].update(key=f"{h.ssl}/../../key.pem"),
        "certificate[0].deploy.key",
        "must not contain '..'",
    ),
    (
        "deploy path is a root itself",
        lambda r, h: cert0(r)["deploy"].update(key=str(h.ssl)),
        "certificate[0].deploy.key",
        "outside every root",
    ),
    (
        "one file for two roles",
        lambda r, h: cert0(r)["deploy"].update(cert=str(h.ssl / "www.key")),
        "certificate[0].deploy.key",
        "is also written by certificate[0].deploy.cert",
    ),
    (
        "two certificates writing the same file",
        lambda r, h: second_certificate(
            r, h, deploy={"fullchain": str(h.ssl / "www.pem"), "key": str(h.ssl / "api.key")}
        ),
        "certificate[1].deploy.fullchain",
        "is also written by certificate[0].deploy.fullchain",
    ),
    (
        "mode as a number",
        lambda r, h: cert0(r)["deploy"].update(mode=640),
        "certificate[0].deploy.mode",
        'expected an octal string such as "0640", got 640',
    ),
    (
        "mode not octal",
        lambda r, h: cert0(r)["deploy"].update(mode="0648"),
        "certificate[0].deploy.mode",
        "expected an octal string",
    ),
    (
        "key mode looser than 0600",
        lambda r, h: cert0(r)["deploy"].update(key_mode="0640"),
        "certificate[0].deploy.key_mode",
        "a private key is 0600 or stricter, got 0640",
    ),
    (
        "owner unknown",
        lambda r, h: cert0(r)["deploy"].update(owner="no-such-user-certplane"),
        "certificate[0].deploy.owner",
        "no user named 'no-such-user-certplane'",
    ),
    (
        "group unknown",
        lambda r, h: cert0(r)["deploy"].update(owner=":no-such-group-certplane"),
        "certificate[0].deploy.owner",
        "no group named 'no-such-group-certplane'",
    ),
    (
        "owner malformed",
        lambda r, h: cert0(r)["deploy"].update(owner="a:b:c"),
        "certificate[0].deploy.owner",
        'expected "user", "user:group" or ":group"',
    ),
    # commands
    (
        "reload as a shell string",
        lambda r, h: cert0(r).update(reload="systemctl reload nginx"),
        "certificate[0].reload",
        "never a shell string: certplane runs no shell",
    ),
    (
        "reload with a non-string argument",
        lambda r, h: cert0(r).update(reload=["kill", "-HUP", 1234]),
        "certificate[0].reload",
        "every argument must be a non-empty string",
    ),
    (
        "reload empty",
        lambda r, h: cert0(r).update(reload=[]),
        "certificate[0].reload",
        "expected a non-empty array of strings",
    ),
    (
        "pre hook as a shell string",
        lambda r, h: cert0(r).update(hooks={"pre": "systemctl stop nginx"}),
        "certificate[0].hooks.pre",
        "never a shell string",
    ),
    (
        "unknown hook",
        lambda r, h: cert0(r).update(hooks={"deploy": ["x"]}),
        "certificate[0].hooks.deploy",
        "unknown key; expected one of: post, pre",
    ),
    # verify and renew
    (
        "verify without host",
        lambda r, h: cert0(r).update(verify=[{"port": 443}]),
        "certificate[0].verify[0].host",
        "missing; expected a string",
    ),
    (
        "verify port out of range",
        lambda r, h: cert0(r).update(verify=[{"host": "a"}, {"host": "b", "port": 0}]),
        "certificate[0].verify[1].port",
        "from 1 to 65535",
    ),
    (
        "verify not a table",
        lambda r, h: cert0(r).update(verify=["127.0.0.1:443"]),
        "certificate[0].verify",
        "expected an array of tables",
    ),
    (
        "renew days zero",
        lambda r, h: cert0(r).update(renew={"before_expiry_days": 0}),
        "certificate[0].renew.before_expiry_days",
        "expected an integer from 1 to 3650, got 0",
    ),
    (
        "renew days missing",
        lambda r, h: cert0(r).update(renew={}),
        "certificate[0].renew.before_expiry_days",
        "missing",
    ),
    # top level
    ("unknown table", lambda r, h: r.update(certificates=[]), "certificates", "unknown key"),
    (
        "certificate not an array of tables",
        lambda r, h: r.update(certificate={"name": "x"}),
        "certificate",
        "expected an array of tables [[certificate]]",
    ),
]


@pytest.mark.parametrize(
    ("edit", "key_path", "fragment"),
    [pytest.param(edit, key, fragment, id=name) for name, edit, key, fragment in CASES],
)
def test_each_check_names_its_key_path(host: Host, edit: Edit, key_path: str, fragment: str):
    raw = minimal(host)
    edit(raw, host)
    found = problems(raw)
    assert any(path == key_path and fragment in message for path, message in found), found


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:14000/directory", "http://[::1]/dir", "http://localhost/dir"]
)
def test_plain_http_to_loopback_is_allowed(host: Host, url: str):
    raw = minimal(host)
    raw["server"]["directory"] = url
    assert parse_config(raw).server.directory == url


def test_a_reload_command_given_as_a_string_is_refused(host: Host):
    raw = minimal(host)
    cert0(raw)["reload"] = "systemctl reload nginx && rm -rf /"
    assert problems(raw) == (
        (
            "certificate[0].reload",
            'a command is an argv list such as ["systemctl", "reload", "nginx"], never a shell '
            "string: certplane runs no shell",
        ),
    )


def test_an_eab_key_file_readable_by_others_is_refused(host: Host):
    raw = minimal(host)
    raw["server"].update(eab_kid="kid-1", eab_hmac_key_file=str(host.eab))
    host.eab.chmod(0o644)
    ((path, message),) = problems(raw)
    assert path == "server.eab_hmac_key_file"
    assert message == (
        f"{host.eab} has mode 0644; a secret file must be 0600 or stricter, readable by the "
        f"agent's user only (chmod 600 {host.eab})"
    )


@pytest.mark.parametrize("mode", [0o640, 0o700, 0o604])
def test_secret_files_must_be_0600_or_stricter(host: Host, mode: int):
    raw = minimal(host)
    raw["server"].update(eab_kid="kid-1", eab_hmac_key_file=str(host.eab))
    host.eab.chmod(mode)
    assert problems(raw)[0][0] == "server.eab_hmac_key_file"
    host.eab.chmod(0o400)
    assert parse_config(raw).server.eab_hmac_key_file == host.eab


def test_a_secret_file_of_another_user_is_refused(host: Host):
    raw = minimal(host)
    raw["certificate"][0]["names"] = ["*.example.com"]
    raw["certificate"][0]["challenge"] = rfc2136(host)
    other = os.geteuid() + 1000
    ((path, message),) = problems(raw, euid=other)
    assert path == "certificate[0].challenge.tsig_secret_file"
    assert f"owned by uid {os.geteuid()}, not by the agent's user (uid {other})" in message


def test_every_problem_is_reported_at_once(host: Host):
    raw = minimal(host)
    raw["server"]["directory"] = "http://acme.example.net/"
    raw["agent"]["report"] = 1
    cert0(raw)["reload"] = "systemctl reload nginx"
    cert0(raw)["deploy"]["key_mode"] = "0644"
    second_certificate(raw, host, name="www", names=["*.example.com"])
    paths = [path for path, _ in problems(raw)]
    assert paths == [
        "server.directory",
        "agent.report",
        "certificate[0].deploy.key_mode",
        "certificate[0].reload",
        "certificate[1].names[0]",  # a wildcard with http-01
        "certificate[1].reload",  # copied from certificate[0]
        "certificate[1].name",  # a duplicate, found although certificate[1] has other problems
    ]


def test_explain_formats_one_line_per_problem():
    text = explain([("server.directory", "expected an https:// URL"), ("", "file unreadable")])
    assert text == (
        "2 configuration problems:\n  server.directory: expected an https:// URL\n  file unreadable"
    )
    assert str(ConfigError([("a.b", "wrong")])) == "1 configuration problem:\n  a.b: wrong"


def test_a_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "agent.toml")
    ((path, message),) = info.value.errors
    assert path == "" and message.startswith("cannot read") and "No such file" in message


def test_invalid_toml_is_a_config_error(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "is not valid TOML" in info.value.errors[0][1]


def test_owner_accepts_names_and_numeric_ids(host: Host):
    raw = minimal(host)
    for owner, expected in [("root", Owner(0, -1)), ("0:0", Owner(0, 0)), (":root", Owner(-1, 0))]:
        cert0(raw)["deploy"]["owner"] = owner
        assert parse_config(raw).certificates[0].deploy.owner == expected
    cert0(raw)["deploy"]["owner"] = 33
    assert parse_config(raw).certificates[0].deploy.owner == Owner(33, -1)
