"""Apache httpd: follow ``Include``/``IncludeOptional`` from the main file and list each
``<VirtualHost>``'s TLS settings and the server's ``Listen`` directives.

Directive names are case-insensitive and reported in their documented spelling. Relative paths
are resolved against ``ServerRoot`` (the main file's directory unless the configuration or the
caller says otherwise). Conditional sections (``<IfModule>``, ``<IfDefine>``, …) are read as if
their condition held. Certificate directives and ``SSLEngine`` at server level are inherited by
virtual hosts that do not set their own, as mod_ssl merges them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import PurePosixPath

from certplane.agent.discovery import apache_syntax
from certplane.agent.discovery.configtree import (
    ConfigLoader,
    Directive,
    cert_reference,
    merge_references,
)
from certplane.agent.discovery.hostfs import HostRoot, has_glob, join_host
from certplane.agent.discovery.model import (
    CertReference,
    ListenAddress,
    ReferenceRole,
    ServerConfig,
    VirtualServer,
)

DEFAULT_APACHE_MAIN = "/etc/apache2/apache2.conf"
_REFERENCES: dict[str, tuple[str, ReferenceRole]] = {
    "sslcertificatefile": ("SSLCertificateFile", "certificate"),
    "sslcertificatekeyfile": ("SSLCertificateKeyFile", "key"),
    "sslcertificatechainfile": ("SSLCertificateChainFile", "chain"),
}
_HTTPS_PORT = 443


def read_apache_config(
    host: HostRoot, main: str = DEFAULT_APACHE_MAIN, server_root: str | None = None
) -> ServerConfig:
    """Apache's configuration starting at ``main``; ``server_root`` defaults to its directory
    and is replaced by a ``ServerRoot`` directive met while reading."""
    loader = ConfigLoader(host, "apache", apache_syntax.parse)
    includes = _Includes(loader, PurePosixPath(server_root or posixpath.dirname(main)))
    tree = includes.expand(loader.load(main, (), None), (main,))
    server_level = list(_server_level(tree))
    return ServerConfig(
        software="apache",
        main_file=main,
        files=tuple(loader.files),
        servers=tuple(_virtual_hosts(server_level, includes.root, loader)),
        listen=tuple(_listen(d) for d in server_level if _is(d, "listen") and d.args),
        errors=tuple(loader.errors),
    )


class _Includes:
    """Splices included files into the tree; tracks ``ServerRoot`` as it is met."""

    def __init__(self, loader: ConfigLoader, root: PurePosixPath) -> None:
        self.loader = loader
        self.root = root

    def expand(self, directives: list[Directive], stack: tuple[str, ...]) -> list[Directive]:
        """``directives`` with every ``Include``/``IncludeOptional`` replaced by the included
        files' directives; ``stack`` lists the files being expanded, outermost first."""
        out: list[Directive] = []
        for directive in directives:
            if directive.block is not None:
                block = tuple(self.expand(list(directive.block), stack))
                out.append(replace(directive, block=block))
            elif _is(directive, "include", "includeoptional"):
                out += self._include(directive, stack)
            else:
                if _is(directive, "serverroot") and len(directive.args) == 1:
                    self.root = join_host(self.root, directive.args[0])
                out.append(directive)
        return out

    def _include(self, directive: Directive, stack: tuple[str, ...]) -> list[Directive]:
        if len(directive.args) != 1:
            self.loader.error(directive.file, directive.line, f"{directive.name} takes one path")
            return []
        out: list[Directive] = []
        for path in self._paths(directive):
            loaded = self.loader.load(path, stack, directive)
            out += self.expand(loaded, (*stack, path))
        return out

    def _paths(self, directive: Directive) -> list[str]:
        """Files an include names; directories are read recursively, in sorted order."""
        host, value = self.loader.host, directive.args[0]
        optional = _is(directive, "includeoptional")
        pattern = join_host(self.root, value)
        matches = host.glob(pattern) if has_glob(value) else [pattern]
        matches = [path for path in matches if has_glob(value) or host.exists(path)]
        if not matches and not optional:
            problem = "no file matches" if has_glob(value) else "not found"
            self.loader.error(
                directive.file, directive.line, f"{directive.name} {value}: {problem}"
            )
        files: list[str] = []
        for path in matches:
            below = host.files_below(path) if host.is_dir(path) else [path]
            files += [str(file) for file in below]
        return files


def _is(directive: Directive, *names: str) -> bool:
    return directive.name.lower() in names


def _server_level(directives: Iterable[Directive]) -> Iterator[Directive]:
    """Directives outside virtual hosts, and the ``<VirtualHost>`` sections themselves; other
    sections are transparent."""
    for directive in directives:
        if directive.block is None or _is(directive, "virtualhost"):
            yield directive
        else:
            yield from _server_level(directive.block)


def _virtual_hosts(
    server_level: list[Directive], root: PurePosixPath, loader: ConfigLoader
) -> Iterator[VirtualServer]:
    inherited = _references(server_level, root)
    engine = _ssl_engine(server_level)
    for section in server_level:
        if section.block is not None:
            body = list(_server_level(section.block))
            for nested in (d for d in body if d.block is not None):
                loader.error(nested.file, nested.line, "<VirtualHost> inside <VirtualHost>")
            body = [d for d in body if d.block is None]
            yield _virtual_host(section, body, inherited, engine, root)


def _virtual_host(
    section: Directive,
    body: list[Directive],
    inherited: list[CertReference],
    engine: bool | None,
    root: PurePosixPath,
) -> VirtualServer:
    own_engine = _ssl_engine(body)
    tls = bool(engine if own_engine is None else own_engine)
    listen = tuple(_vhost_address(section, arg, tls) for arg in section.args)
    return VirtualServer(
        software="apache",
        file=section.file,
        line=section.line,
        server_names=_server_names(body),
        listen=listen,
        tls=tls,
        references=tuple(merge_references(_references(body, root), inherited, tls)),
    )


def _server_names(body: list[Directive]) -> tuple[str, ...]:
    """The last ``ServerName`` (httpd keeps the last), then every ``ServerAlias`` argument."""
    names = [d.args[0] for d in body if _is(d, "servername") and d.args][-1:]
    return tuple(names + [arg for d in body if _is(d, "serveralias") for arg in d.args])


def _ssl_engine(body: list[Directive]) -> bool | None:
    """The last ``SSLEngine`` setting: True for ``on``, None when absent."""
    values = [d.args[0].lower() for d in body if _is(d, "sslengine") and d.args]
    return values[-1] == "on" if values else None


def _references(body: list[Directive], root: PurePosixPath) -> list[CertReference]:
    refs = []
    for directive in body:
        known = _REFERENCES.get(directive.name.lower())
        if known is not None and directive.block is None and len(directive.args) == 1:
            refs.append(cert_reference(directive, *known, root, _unresolvable))
    return refs


def _unresolvable(value: str) -> str | None:
    """Why a path value cannot be resolved by reading the configuration, or None."""
    if "${" in value:
        return "contains a variable"
    if value.startswith("pkcs11:"):
        return "key in a PKCS#11 token"
    return None


def _listen(directive: Directive) -> ListenAddress:
    """``Listen [address:]port [protocol]``; port 443 defaults to protocol https."""
    host, port = split_address(directive.args[0])
    protocol = directive.args[1].lower() if len(directive.args) > 1 else None
    ssl = protocol == "https" or (protocol is None and port == _HTTPS_PORT)
    return ListenAddress(host, port, ssl, False, directive.file, directive.line)


def _vhost_address(section: Directive, spec: str, tls: bool) -> ListenAddress:
    host, port = split_address(spec)
    return ListenAddress(host, port, tls, False, section.file, section.line)


def split_address(spec: str) -> tuple[str, int | None]:
    """``(host, port)`` of ``[::1]:443``, ``*:443``, ``_default_:443``, ``10.0.0.1``, ``*`` or
    ``443``; port None when absent or ``*``."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, _port(rest[1:])
    if spec.isdigit():
        return "*", _port(spec)
    host, colon, port = spec.rpartition(":")
    if not colon:
        return spec, None
    return host, _port(port)


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
