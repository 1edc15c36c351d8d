"""The host agent's configuration: one TOML file, checked once, every problem reported.

:func:`load_config` reads the file and returns an :class:`AgentConfig`, or raises
:class:`ConfigError` holding *every* problem found as ``(key path, message)`` pairs, such as
``("certificate[1].deploy.key", "'/tmp/x.key' is outside every root in agent.roots (…)")``;
:func:`explain` formats them (``certplane-agent check-config`` prints that).

A complete example::

    [server]
    directory = "https://acme.example.net/acme/acme-corp/directory"
    ca_bundle = "/etc/certplane/ca.pem"                  # optional
    eab_kid = "kid-123"                                  # optional, with the next key
    eab_hmac_key_file = "/etc/certplane/eab.key"         # mode 0600, owned by the agent's user
    contact = ["ops@example.com"]

    [agent]
    state_dir = "/var/lib/certplane-agent"
    roots = ["/etc/ssl/certplane", "/var/www/acme"]      # the only places the agent writes to
    report = true                                        # report inventory to the server

    [agent.discovery]
    cert_paths = ["/etc/ssl/certs"]
    nginx_conf = "/etc/nginx/nginx.conf"
    apache_conf = "/etc/apache2"

    [[certificate]]
    name = "www"
    names = ["www.example.com", "example.com"]
    key_type = "ec-p256"           # ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096
    reload = ["systemctl", "reload", "nginx"]            # an argv list, never a shell string
    [certificate.challenge]
    type = "http-01"
    mode = "webroot"               # or "standalone" with port (80) and address
    webroot = "/var/www/acme"
    [certificate.deploy]
    fullchain = "/etc/ssl/certplane/www/fullchain.pem"
    key = "/etc/ssl/certplane/www/key.pem"               # always 0600 (key_mode: only stricter)
    owner = "root:ssl-cert"                              # user[:group], names or numeric ids
    mode = "0644"                                        # certificate files
    [[certificate.verify]]
    host = "127.0.0.1"
    port = 443
    sni = "www.example.com"
    [certificate.hooks]
    pre = ["/usr/local/bin/before-renewal"]
    post = ["/usr/local/bin/after-renewal"]
    [certificate.renew]
    before_expiry_days = 30

Other challenges: ``type = "dns-01"`` with ``mode = "rfc2136"`` (``server``, ``port`` 53,
``zone``, ``tsig_key_name``, ``tsig_algorithm``, ``tsig_secret_file``) or ``mode = "hook"``
(``hook``, an argv list); ``type = "tls-alpn-01"`` with ``mode = "standalone"`` (``port`` 443,
``address``). Secrets are never inline: only files, checked like ``eab_hmac_key_file``.
"""

from __future__ import annotations

import dataclasses
import grp
import ipaddress
import os
import pwd
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from certplane.agent.state import CERTIFICATE_NAME
from certplane.agent.store import Owner
from certplane.policy.identifiers import IdentifierRejections, parse_identifiers

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224")
CHALLENGE_MODES = {
    "http-01": ("standalone", "webroot"),
    "dns-01": ("rfc2136", "hook"),
    "tls-alpn-01": ("standalone",),
}
DEFAULT_CERT_MODE = 0o644
KEY_MODE = 0o600
# Keys that would put a secret in the file, and the key that names a file instead.
_INLINE_SECRETS = {"eab_hmac_key": "eab_hmac_key_file", "tsig_secret": "tsig_secret_file"}
_EMAIL = re.compile(r"^[^@\s,;:<>]+@([^@\s,;:<>]+)$")
_OCTAL_MODE = re.compile(r"^0?[0-7]{3}$")
_DEPLOY_ROLES = ("cert", "chain", "fullchain", "key")
_ID_RULE = "an id: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit"
_INLINE_VALUE = (
    "never write a secret inline: put it in a file (mode 0600) and name that file with '{file_key}'"
)
_SHELL_STRING = (
    'a command is an argv list such as ["systemctl", "reload", "nginx"], never a shell '
    "string: certplane runs no shell"
)

KeyProblem = tuple[str, str]
T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is wrong; ``errors`` holds every ``(key path, message)`` found."""

    def __init__(self, errors: Iterable[KeyProblem]) -> None:
        self.errors: tuple[KeyProblem, ...] = tuple(errors)
        super().__init__(explain(self.errors))


def explain(errors: Sequence[KeyProblem]) -> str:
    """One line per problem, ``key.path: message``, under a count."""
    noun = "problem" if len(errors) == 1 else "problems"
    lines = [f"{len(errors)} configuration {noun}:"]
    lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in errors]
    return "\n".join(lines)


# -- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    directory: str
    ca_bundle: Path | None = None
    eab_kid: str | None = None
    eab_hmac_key_file: Path | None = None
    contact: tuple[str, ...] = ()  # mailto: URIs


@dataclass(frozen=True)
class DiscoverySettings:
    cert_paths: tuple[Path, ...] = ()
    nginx_conf: tuple[Path, ...] = ()
    apache_conf: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AgentSettings:
    state_dir: Path
    roots: tuple[Path, ...]
    report: bool = True
    discovery: DiscoverySettings = DiscoverySettings()


@dataclass(frozen=True)
class Http01Standalone:
    type: ClassVar[str] = "http-01"
    mode: ClassVar[str] = "standalone"
    port: int = 80
    address: str = ""  # "" listens on every address


@dataclass(frozen=True)
class Http01Webroot:
    type: ClassVar[str] = "http-01"
    mode: ClassVar[str] = "webroot"
    webroot: Path


@dataclass(frozen=True)
class Dns01Rfc2136:
    type: ClassVar[str] = "dns-01"
    mode: ClassVar[str] = "rfc2136"
    server: str
    zone: str
    tsig_key_name: str
    tsig_secret_file: Path
    tsig_algorithm: str = "hmac-sha256"
    port: int = 53


@dataclass(frozen=True)
class Dns01Hook:
    type: ClassVar[str] = "dns-01"
    mode: ClassVar[str] = "hook"
    hook: tuple[str, ...]


@dataclass(frozen=True)
class TlsAlpn01Standalone:
    type: ClassVar[str] = "tls-alpn-01"
    mode: ClassVar[str] = "standalone"
    port: int = 443
    address: str = ""


Challenge = Http01Standalone | Http01Webroot | Dns01Rfc2136 | Dns01Hook | TlsAlpn01Standalone


@dataclass(frozen=True)
class DeploySettings:
    """Where a certificate goes. ``mode`` is for certificate files; the key is ``key_mode``."""

    key: Path
    cert: Path | None = None
    chain: Path | None = None
    fullchain: Path | None = None
    owner: Owner | None = None
    mode: int = DEFAULT_CERT_MODE
    key_mode: int = KEY_MODE

    def files(self) -> dict[str, Path]:
        """The configured files by role (``cert``, ``chain``, ``fullchain``, ``key``)."""
        found = {role: getattr(self, role) for role in _DEPLOY_ROLES}
        return {role: path for role, path in found.items() if path is not None}


@dataclass(frozen=True)
class VerifyEndpoint:
    host: str
    port: int = 443
    sni: str | None = None  # None: the first of the certificate's names


@dataclass(frozen=True)
class Hooks:
    pre: tuple[str, ...] | None = None
    post: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CertificateSettings:
    name: str
    names: tuple[str, ...]
    challenge: Challenge
    deploy: DeploySettings
    key_type: str = "ec-p256"
    reload: tuple[str, ...] | None = None
    verify: tuple[VerifyEndpoint, ...] = ()
    hooks: Hooks = Hooks()
    before_expiry_days: int | None = None


@dataclass(frozen=True)
class AgentConfig:
    server: ServerSettings
    agent: AgentSettings
    certificates: tuple[CertificateSettings, ...] = ()


# -- loading ------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], *, euid: int | None = None) -> AgentConfig:
    """Read and check the TOML file at ``path``; raise :class:`ConfigError` with every problem.

    ``euid`` is the agent's user (default: this process's); secret files must belong to it.
    """
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError([("", f"cannot read {os.fspath(path)}: {exc.strerror}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("", f"{os.fspath(path)} is not valid TOML: {exc}")]) from exc
    return parse_config(raw, euid=euid)


def parse_config(raw: Mapping[str, Any], *, euid: int | None = None) -> AgentConfig:
    """Check an already parsed TOML document; see :func:`load_config`."""
    errors: list[KeyProblem] = []
    top = _Table(raw, "", errors, os.geteuid() if euid is None else euid)
    top.allow("server", "agent", "certificate")
    server = _server(top.sub("server", required=True))
    agent = _agent(top.sub("agent", required=True))
    certificates = [_certificate(t) for t in top.subs("certificate")]
    _check_unique_names(certificates, errors)
    _check_shared_files(certificates, errors)
    if agent is not None:
        _check_inside_roots(agent.roots, certificates, errors)
    settings = tuple(c.settings for c in certificates if c.settings is not None)
    if errors or server is None or agent is None or len(settings) != len(certificates):
        raise ConfigError(errors)
    return AgentConfig(server, agent, settings)


# -- typed access to one table, errors collected --------------------------------------------------


class _Table:
    """One TOML table: typed getters record a problem under the key path and return ``None``."""

    def __init__(
        self, raw: Mapping[str, Any], path: str, errors: list[KeyProblem], euid: int
    ) -> None:
        self.raw, self.where, self.errors, self.euid = raw, path, errors, euid

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> None:
        self.errors.append((self.key(name), message))

    def allow(self, *names: str) -> None:
        """Refuse keys not in ``names`` (typos), and secrets written inline."""
        for name in self.raw:
            if name in _INLINE_SECRETS and name not in names:
                self.error(name, _INLINE_VALUE.format(file_key=_INLINE_SECRETS[name]))
            elif name not in names:
                self.error(name, f"unknown key; expected one of: {', '.join(sorted(names))}")

    def typed(self, name: str, kind: type[T], expected: str, *, required: bool = False) -> T | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.error(name, f"missing; expected {expected}")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.error(name, f"expected {expected}, got {_describe(value)}")
            return None
        return value

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.typed(name, str, "a string", required=required)
        if value == "":
            self.error(name, "must not be empty")
            return None
        return value

    def choice(
        self, name: str, options: Sequence[str], *, default: str | None = None
    ) -> str | None:
        expected = "one of " + ", ".join(f'"{o}"' for o in options)
        value = self.typed(name, str, expected, required=default is None)
        if value is not None and value not in options:
            self.error(name, f"expected {expected}, got {value!r}")
            return None
        return default if value is None and name not in self.raw else value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.typed(name, bool, "true or false")
        return default if value is None else value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        expected = f"an integer from {low} to {high}"
        value = self.typed(name, int, expected, required=default is None)
        if value is not None and not low <= value <= high:
            self.error(name, f"expected {expected}, got {value}")
            return None
        return default if name not in self.raw else value

    def port(self, name: str, default: int) -> int | None:
        return self.integer(name, default, 1, 65535)

    def path(self, name: str, *, required: bool = False) -> Path | None:
        value = self.typed(name, str, "an absolute path", required=required)
        return None if value is None else self._absolute(self.key(name), value)

    def paths(self, name: str, *, one_allowed: bool = False) -> tuple[Path, ...] | None:
        """An array of absolute paths (or a single path when ``one_allowed``)."""
        value = self.raw.get(name, [])
        if one_allowed and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(name, f"expected an array of absolute paths, got {_describe(value)}")
            return None
        found = [self._path_item(f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]
        return None if None in found else tuple(p for p in found if p is not None)

    def _path_item(self, key: str, value: object) -> Path | None:
        if not isinstance(value, str):
            self.errors.append((key, f"expected an absolute path, got {_describe(value)}"))
            return None
        return self._absolute(key, value)

    def _absolute(self, key: str, value: str) -> Path | None:
        if not value.startswith("/") or "\0" in value:
            self.errors.append(
                (key, f"expected an absolute path (starting with '/'), got {value!r}")
            )
        elif ".." in value.split("/"):
            self.errors.append((key, f"{value!r} must not contain '..'; write the path plainly"))
        else:
            return Path(os.path.normpath(value))
        return None

    def argv(self, name: str) -> tuple[str, ...] | None:
        """A command as an argv list; a string is refused, the agent never runs a shell."""
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            self.error(name, _SHELL_STRING)
        elif not isinstance(value, list) or not value:
            self.error(name, f"expected a non-empty array of strings, got {_describe(value)}")
        elif not all(isinstance(item, str) and item and "\0" not in item for item in value):
            self.error(name, "every argument must be a non-empty string")
        else:
            return tuple(value)
        return None

    def strings(self, name: str) -> tuple[str, ...] | None:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.error(name, f"expected an array of strings, got {_describe(value)}")
            return None
        return tuple(value)

    def mode(self, name: str, default: int) -> int | None:
        """A file mode written as an octal string ("0640")."""
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or not _OCTAL_MODE.fullmatch(value):
            self.error(name, f'expected an octal string such as "0640", got {value!r}')
            return None
        return int(value, 8)

    def sub(self, name: str, *, required: bool = False) -> _Table | None:
        """The sub-table ``name``; an absent optional one reads as empty."""
        value = self.typed(name, dict, f"a table [{self.key(name)}]", required=required)
        if value is None:
            return None if name in self.raw or required else self._child({}, self.key(name))
        return self._child(value, self.key(name))

    def subs(self, name: str) -> list[_Table]:
        """The array of tables ``name`` (``[[name]]``), each with its index in its key path."""
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, f"expected an array of tables [[{self.key(name)}]]")
            return []
        return [self._child(v, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]

    def secret_file(self, name: str, *, required: bool = False) -> Path | None:
        """A path to a secret: a regular file, 0600 or stricter, owned by the agent's user."""
        path = self.path(name, required=required)
        problem = None if path is None else secret_file_problem(path, self.euid)
        if problem is not None:
            self.error(name, problem)
            return None
        return path

    def _child(self, raw: Mapping[str, Any], path: str) -> _Table:
        return _Table(raw, path, self.errors, self.euid)


def _describe(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    kinds |= {list: "an array", dict: "a table"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def secret_file_problem(path: Path, euid: int) -> str | None:
    """Why ``path`` cannot hold a secret, or ``None``: it must be a regular file, mode 0600 or
    stricter (no permission for group or others, no execute), owned by user ``euid``."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot use {path}: {exc.strerror}"
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if mode & ~0o600:
        hint = f"readable by the agent's user only (chmod 600 {path})"
        return f"{path} has mode {mode:04o}; a secret file must be 0600 or stricter, {hint}"
    if info.st_uid != euid:
        owner = f"owned by uid {info.st_uid}, not by the agent's user (uid {euid})"
        return f"{path} is {owner}: chown it to the agent's user"
    return None


# -- [server] and [agent] -------------------------------------------------------------------------


def _server(t: _Table | None) -> ServerSettings | None:
    if t is None:
        return None
    mark = len(t.errors)
    t.allow("directory", "ca_bundle", "eab_kid", "eab_hmac_key_file", "contact")
    directory = t.string("directory", required=True)
    if directory is not None and (problem := _directory_problem(directory)):
        t.error("directory", problem)
    ca_bundle = t.path("ca_bundle")
    if ca_bundle is not None and not ca_bundle.is_file():
        t.error("ca_bundle", f"{ca_bundle} is not a readable file")
    eab_kid, eab_file = t.string("eab_kid"), t.secret_file("eab_hmac_key_file")
    if ("eab_kid" in t.raw) != ("eab_hmac_key_file" in t.raw):
        t.error("eab_kid", "give both eab_kid and eab_hmac_key_file, or neither")
    contact = _contacts(t)
    if len(t.errors) > mark or directory is None or contact is None:
        return None
    return ServerSettings(directory, ca_bundle, eab_kid, eab_file, contact)


def _directory_problem(url: str) -> str | None:
    """An https URL, or http to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"expected an https:// URL of the ACME directory, got {url!r}"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return "plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost)"
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _contacts(t: _Table) -> tuple[str, ...] | None:
    emails = t.strings("contact")
    if emails is None:
        return None
    found = []
    for i, email in enumerate(emails):
        address = email.removeprefix("mailto:")
        match = _EMAIL.fullmatch(address)
        if match is None or not _is_domain(match.group(1)):
            key = f"{t.key('contact')}[{i}]"
            t.errors.append((key, f"expected an email address, got {email!r}"))
        found.append(f"mailto:{address}")
    return tuple(found)


def _is_domain(value: str) -> bool:
    try:
        name = parse_name(value)
    except ValueError:
        return False
    return not _is_ip(name) and not name.startswith("*.")


def _agent(t: _Table | None) -> AgentSettings | None:
    if t is None:
        return None
    mark = len(t.errors)
    t.allow("state_dir", "roots", "report", "discovery")
    state_dir, roots = t.path("state_dir", required=True), t.paths("roots")
    if roots is not None and not roots:
        t.error("roots", "missing; expected the directories the agent may write to")
    for i, root in enumerate(roots or ()):
        if not root.is_dir():
            t.errors.append((f"{t.key('roots')}[{i}]", f"{root} is not an existing directory"))
    report = t.boolean("report", True)
    discovery = _discovery(t.sub("discovery"))
    if len(t.errors) > mark or state_dir is None or not roots or discovery is None:
        return None
    return AgentSettings(state_dir, roots, report, discovery)


def _discovery(t: _Table | None) -> DiscoverySettings | None:
    if t is None:
        return None
    t.allow("cert_paths", "nginx_conf", "apache_conf")
    found = [t.paths(key, one_allowed=True) for key in ("cert_paths", "nginx_conf", "apache_conf")]
    cert_paths, nginx, apache = found
    if cert_paths is None or nginx is None or apache is None:
        return None
    return DiscoverySettings(cert_paths, nginx, apache)


# -- [[certificate]] ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    """What one [[certificate]] yielded, even when part of it is wrong: the checks across
    certificates run on every part that could be read, so all problems show at once."""

    where: str
    settings: CertificateSettings | None
    name: str | None
    files: dict[str, Path]
    webroot: Path | None


def _certificate(t: _Table) -> _Parsed:
    mark = len(t.errors)
    t.allow(*_CERTIFICATE_KEYS)
    name = t.string("name", required=True)
    if name is not None and not CERTIFICATE_NAME.fullmatch(name):
        t.error("name", f"expected {_ID_RULE}, got {name!r}")
        name = None
    names = _names(t)
    challenge = _challenge(t.sub("challenge", required=True))
    if names is not None and challenge is not None:
        _check_names_fit_challenge(t, names, challenge)
    deploy, files = _deploy(t.sub("deploy", required=True))
    key_type = t.choice("key_type", KEY_TYPES, default="ec-p256")
    reload = t.argv("reload")
    verify = tuple(_verify(v) for v in t.subs("verify"))
    hooks = _hooks(t.sub("hooks"))
    renew = t.sub("renew") if "renew" in t.raw else None
    days = None if renew is None else _renew(renew)
    webroot = challenge.webroot if isinstance(challenge, Http01Webroot) else None
    parsed = _Parsed(t.where, None, name, files, webroot)
    if len(t.errors) > mark or not (name and names and challenge and deploy and key_type):
        return parsed
    endpoints = tuple(v for v in verify if v is not None)
    settings = CertificateSettings(
        name, names, challenge, deploy, key_type, reload, endpoints, hooks or Hooks(), days
    )
    return dataclasses.replace(parsed, settings=settings)


_CERTIFICATE_KEYS: tuple[str, ...] = ("name", "names", "key_type", "challenge", "deploy")
_CERTIFICATE_KEYS += ("reload", "verify", "hooks", "renew")


def _names(t: _Table) -> tuple[str, ...] | None:
    """DNS names and IP addresses, normalised; every bad or repeated one reported."""
    raw = t.strings("names")
    if raw is not None and not raw:
        t.error("names", "missing; expected at least one DNS name or IP address")
    if not raw:
        return None
    normal: list[str] = []
    for i, value in enumerate(raw):
        key = f"{t.key('names')}[{i}]"
        try:
            name = parse_name(value)
        except ValueError as exc:
            t.errors.append((key, f"{value!r} is not a valid DNS name or IP address: {exc}"))
            continue
        if name in normal:
            t.errors.append((key, f"{value!r} is listed twice"))
        normal.append(name)
    return tuple(normal) if len(normal) == len(set(normal)) == len(raw) else None


def parse_name(value: str) -> str:
    """``value`` normalised as a DNS name (wildcards allowed) or an IP address; raises
    ValueError with the policy's reason (certplane.policy.identifiers)."""
    kind = "ip" if ":" in value or _is_ip(value) else "dns"
    try:
        return parse_identifiers([{"type": kind, "value": value}])[0].value
    except IdentifierRejections as exc:
        raise ValueError(exc.rejections[0].detail) from None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_names_fit_challenge(t: _Table, names: Sequence[str], challenge: Challenge) -> None:
    """Wildcards need dns-01 (RFC 8555 §7.1.3); IP addresses cannot use it (RFC 8738 §7)."""
    for i, name in enumerate(names):
        key = f"{t.key('names')}[{i}]"
        if name.startswith("*.") and challenge.type != "dns-01":
            t.errors.append((key, f'wildcard {name!r} needs challenge type "dns-01"'))
        if _is_ip(name) and challenge.type == "dns-01":
            t.errors.append((key, f"IP address {name!r} cannot be validated by dns-01"))


def _challenge(t: _Table | None) -> Challenge | None:
    if t is None:
        return None
    kind = t.choice("type", tuple(CHALLENGE_MODES))
    mode = None if kind is None else t.choice("mode", CHALLENGE_MODES[kind])
    if kind is None or mode is None:
        return None
    return _CHALLENGE_PARSERS[kind, mode](t)


def _http01_standalone(t: _Table) -> Challenge | None:
    t.allow("type", "mode", "port", "address")
    port, address = t.port("port", 80), _address(t)
    return None if port is None or address is None else Http01Standalone(port, address)


def _http01_webroot(t: _Table) -> Challenge | None:
    t.allow("type", "mode", "webroot")
    webroot = t.path("webroot", required=True)
    return None if webroot is None else Http01Webroot(webroot)


_RFC2136_KEYS: tuple[str, ...] = ("server", "port", "zone", "tsig_key_name")
_RFC2136_KEYS += ("tsig_algorithm", "tsig_secret_file")


def _dns01_rfc2136(t: _Table) -> Challenge | None:
    t.allow("type", "mode", *_RFC2136_KEYS)
    mark = len(t.errors)
    server, zone = t.string("server", required=True), t.string("zone", required=True)
    if zone is not None:
        _check_zone(t, zone)
    key_name = t.string("tsig_key_name", required=True)
    algorithm = t.choice("tsig_algorithm", TSIG_ALGORITHMS, default="hmac-sha256")
    secret = t.secret_file("tsig_secret_file", required=True)
    port = t.port("port", 53)
    if len(t.errors) > mark or not (server and zone and key_name and secret and algorithm and port):
        return None
    return Dns01Rfc2136(server, zone, key_name, secret, algorithm, port)


def _check_zone(t: _Table, zone: str) -> None:
    try:
        parse_name(zone)
    except ValueError as exc:
        t.error("zone", f"{zone!r} is not a DNS zone name: {exc}")


def _dns01_hook(t: _Table) -> Challenge | None:
    t.allow("type", "mode", "hook")
    hook = t.argv("hook")
    if "hook" not in t.raw:
        t.error("hook", 'missing; expected an argv list such as ["/usr/local/bin/dns-hook"]')
    return None if hook is None else Dns01Hook(hook)


def _tlsalpn01_standalone(t: _Table) -> Challenge | None:
    t.allow("type", "mode", "port", "address")
    port, address = t.port("port", 443), _address(t)
    return None if port is None or address is None else TlsAlpn01Standalone(port, address)


def _address(t: _Table) -> str | None:
    """A listening address: an IP address, or "" (absent) for every address."""
    value = t.typed("address", str, "an IP address")
    if value is None:
        return None if "address" in t.raw else ""
    if value and not _is_ip(value):
        t.error("address", f"expected an IP address to listen on, got {value!r}")
        return None
    return value


_CHALLENGE_PARSERS: dict[tuple[str, str], Callable[[_Table], Challenge | None]] = {
    ("http-01", "standalone"): _http01_standalone,
    ("http-01", "webroot"): _http01_webroot,
    ("dns-01", "rfc2136"): _dns01_rfc2136,
    ("dns-01", "hook"): _dns01_hook,
    ("tls-alpn-01", "standalone"): _tlsalpn01_standalone,
}


def _deploy(t: _Table | None) -> tuple[DeploySettings | None, dict[str, Path]]:
    """The deploy settings (or None) and every file path that could be read."""
    if t is None:
        return None, {}
    mark = len(t.errors)
    t.allow(*_DEPLOY_ROLES, "owner", "mode", "key_mode")
    paths = {role: t.path(role, required=role == "key") for role in _DEPLOY_ROLES}
    files = {role: path for role, path in paths.items() if path is not None}
    if "cert" not in t.raw and "fullchain" not in t.raw:
        t.errors.append((t.where, "expected 'cert' or 'fullchain' (or both) besides 'key'"))
    mode, key_mode = t.mode("mode", DEFAULT_CERT_MODE), t.mode("key_mode", KEY_MODE)
    if key_mode is not None and key_mode & ~KEY_MODE:
        t.error("key_mode", f"a private key is 0600 or stricter, got {key_mode:04o}")
    owner = _owner(t)
    key = paths["key"]
    if len(t.errors) > mark or key is None or mode is None or key_mode is None:
        return None, files
    cert, chain, fullchain = paths["cert"], paths["chain"], paths["fullchain"]
    return DeploySettings(key, cert, chain, fullchain, owner, mode, key_mode), files


def _owner(t: _Table) -> Owner | None:
    """``owner``: a uid, or "user[:group]" / ":group" with names or numeric ids."""
    value = t.raw.get("owner")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Owner(value, -1)
    if not isinstance(value, str) or not value or value.count(":") > 1:
        t.error("owner", f'expected "user", "user:group" or ":group" (names or ids), got {value!r}')
        return None
    user, _, group = value.partition(":")
    uid = _lookup(t, user, pwd.getpwnam, "user") if user else -1
    gid = _lookup(t, group, grp.getgrnam, "group") if group else -1
    return None if uid is None or gid is None else Owner(uid, gid)


def _lookup(t: _Table, name: str, find: Callable[[str], Any], what: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        entry = find(name)
    except KeyError:
        t.error("owner", f"no {what} named {name!r} on this host")
        return None
    return int(entry[2])


def _verify(t: _Table) -> VerifyEndpoint | None:
    t.allow("host", "port", "sni")
    host, port, sni = t.string("host", required=True), t.port("port", 443), t.string("sni")
    if host is None or port is None or ("sni" in t.raw and sni is None):
        return None
    return VerifyEndpoint(host, port, sni)


def _hooks(t: _Table | None) -> Hooks | None:
    if t is None:
        return None
    t.allow("pre", "post")
    pre, post = t.argv("pre"), t.argv("post")
    if (pre is None and "pre" in t.raw) or (post is None and "post" in t.raw):
        return None
    return Hooks(pre, post)


def _renew(t: _Table) -> int | None:
    t.allow("before_expiry_days")
    return t.integer("before_expiry_days", None, 1, 3650)


# -- checks across certificates -------------------------------------------------------------------


def _check_unique_names(certs: Sequence[_Parsed], errors: list[KeyProblem]) -> None:
    first: dict[str, str] = {}
    for cert in certs:
        if cert.name is None:
            continue
        if cert.name in first:
            message = f"{cert.name!r} is already the name of {first[cert.name]}"
            errors.append((f"{cert.where}.name", message))
        first.setdefault(cert.name, cert.where)


def _check_shared_files(certs: Sequence[_Parsed], errors: list[KeyProblem]) -> None:
    """No file is written twice, within a certificate or across certificates."""
    writer: dict[Path, str] = {}
    for cert in certs:
        for role, file in cert.files.items():
            key = f"{cert.where}.deploy.{role}"
            if file in writer:
                errors.append((key, f"{file} is also written by {writer[file]}"))
            writer.setdefault(file, key)


def _check_inside_roots(
    roots: Sequence[Path], certs: Sequence[_Parsed], errors: list[KeyProblem]
) -> None:
    """Deployed files lie strictly inside a root of ``agent.roots``; a webroot inside or at one."""
    shown = ", ".join(map(str, roots))
    for cert in certs:
        for role, file in cert.files.items():
            if not any(root in file.parents for root in roots):
                message = f"{file} is outside every root in agent.roots ({shown})"
                errors.append((f"{cert.where}.deploy.{role}", message))
        webroot = cert.webroot
        if webroot is not None and not any(webroot == r or r in webroot.parents for r in roots):
            message = f"webroot {webroot} is outside every root in agent.roots ({shown})"
            errors.append((f"{cert.where}.challenge.webroot", message))
