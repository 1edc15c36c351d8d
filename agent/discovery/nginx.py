"""nginx: follow includes from the main file and list each ``server`` block's TLS settings.

Paths in ``include``, ``ssl_certificate`` and ``ssl_certificate_key`` are resolved as nginx does:
relative to the configuration prefix (the directory of ``nginx.conf`` unless told otherwise).
``ssl_certificate`` directives at ``http``/``stream``/``mail`` level are inherited by servers that
set none of their own (and likewise keys), as nginx merges them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import replace
from pathlib import PurePosixPath

from certplane.agent.discovery import nginx_syntax
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

DEFAULT_NGINX_MAIN = "/etc/nginx/nginx.conf"
_CONTEXTS = ("http", "stream", "mail")
_REFERENCES: dict[str, ReferenceRole] = {
    "ssl_certificate": "certificate",
    "ssl_certificate_key": "key",
}
_DEFAULT_PORT = 80


def read_nginx_config(
    host: HostRoot, main: str = DEFAULT_NGINX_MAIN, prefix: str | None = None
) -> ServerConfig:
    """nginx's configuration starting at ``main``; ``prefix`` defaults to its directory."""
    prefix_path = PurePosixPath(prefix or posixpath.dirname(main))
    loader = ConfigLoader(host, "nginx", nginx_syntax.parse)
    tree = _Includes(loader, prefix_path).expand(loader.load(main, (), None), (main,))
    return ServerConfig(
        software="nginx",
        main_file=main,
        files=tuple(loader.files),
        servers=tuple(_servers(tree, prefix_path)),
        listen=(),
        errors=tuple(loader.errors),
    )


class _Includes:
    """Splices the files named by ``include`` directives into the tree, at any depth."""

    def __init__(self, loader: ConfigLoader, prefix: PurePosixPath) -> None:
        self.loader = loader
        self.prefix = prefix

    def expand(self, directives: list[Directive], stack: tuple[str, ...]) -> list[Directive]:
        """``directives`` with every include replaced by the included files' directives;
        ``stack`` lists the files being expanded, outermost first."""
        out: list[Directive] = []
        for directive in directives:
            if directive.name == "include" and directive.block is None:
                out += self._include(directive, stack)
            elif directive.block is not None:
                block = tuple(self.expand(list(directive.block), stack))
                out.append(replace(directive, block=block))
            else:
                out.append(directive)
        return out

    def _include(self, directive: Directive, stack: tuple[str, ...]) -> list[Directive]:
        if len(directive.args) != 1:
            self.loader.error(directive.file, directive.line, "include takes one argument")
            return []
        out: list[Directive] = []
        for path in self._paths(directive):
            loaded = self.loader.load(path, stack, directive)
            out += self.expand(loaded, (*stack, path))
        return out

    def _paths(self, directive: Directive) -> list[str]:
        """Files an include names: glob matches (sorted, possibly none) or the one file."""
        pattern = join_host(self.prefix, directive.args[0])
        if not has_glob(directive.args[0]):
            return [str(pattern)]
        host = self.loader.host
        return [str(path) for path in host.glob(pattern) if not host.is_dir(path)]


def _servers(tree: list[Directive], prefix: PurePosixPath) -> Iterator[VirtualServer]:
    """The ``server`` blocks of every ``http``, ``stream`` and ``mail`` context, in order."""
    for context in tree:
        if context.name not in _CONTEXTS or context.block is None:
            continue
        inherited = _references(context.block, prefix)
        for directive in context.block:
            if directive.name == "server" and directive.block is not None:
                yield _server(directive, inherited, prefix)


def _server(
    server: Directive, inherited: list[CertReference], prefix: PurePosixPath
) -> VirtualServer:
    body = server.block or ()
    ssl_on = any(d.name == "ssl" and d.args == ("on",) for d in body)
    listen = tuple(_listen(d, ssl_on) for d in body if d.name == "listen" and d.args)
    if not listen:
        listen = (ListenAddress("*", _DEFAULT_PORT, ssl_on, False, server.file, server.line),)
    tls = any(address.ssl for address in listen)
    return VirtualServer(
        software="nginx",
        file=server.file,
        line=server.line,
        server_names=tuple(arg for d in body if d.name == "server_name" for arg in d.args),
        listen=listen,
        tls=tls,
        references=tuple(merge_references(_references(body, prefix), inherited, tls)),
    )


def _references(body: tuple[Directive, ...], prefix: PurePosixPath) -> list[CertReference]:
    refs = []
    for directive in body:
        role = _REFERENCES.get(directive.name)
        if role is not None and len(directive.args) == 1:
            refs.append(cert_reference(directive, directive.name, role, prefix, _unresolvable))
    return refs


def _unresolvable(value: str) -> str | None:
    """Why a path value cannot be resolved without a request, or None."""
    if "$" in value:
        return "contains a variable"
    if value.startswith("data:"):
        return "inline data"
    if value.startswith("engine:"):
        return "key in an engine"
    return None


def _listen(directive: Directive, ssl_on: bool) -> ListenAddress:
    """One ``listen`` directive: ``443``, ``*:443``, ``127.0.0.1:443``, ``[::]:443``,
    ``localhost`` (port 80) or ``unix:/path``, then flags such as ``ssl`` and ``default_server``."""
    host, port = split_listen(directive.args[0])
    flags = directive.args[1:]
    return ListenAddress(
        host=host,
        port=port,
        ssl=ssl_on or "ssl" in flags,
        default_server="default_server" in flags or "default" in flags,
        file=directive.file,
        line=directive.line,
    )


def split_listen(spec: str) -> tuple[str, int | None]:
    """``(host, port)`` of a listen address; ``*`` for any address, port None when invalid."""
    if spec.startswith("unix:"):
        return spec, None
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, _port(rest[1:] if rest.startswith(":") else str(_DEFAULT_PORT))
    if spec.isdigit():
        return "*", _port(spec)
    host, colon, port = spec.rpartition(":")
    if not colon:
        return spec, _DEFAULT_PORT
    return host, _port(port)


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
