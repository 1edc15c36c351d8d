"""The parse tree both web-server readers produce, and the loader that reads their files.

nginx and Apache syntaxes differ, but both yield :class:`Directive` trees; each reader splices
its include directives into the tree through a :class:`ConfigLoader`, which bounds file size,
include depth and the number of files, detects include cycles, and records every problem as a
:class:`~certplane.agent.discovery.model.ParseError` instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from certplane.agent.discovery.hostfs import (
    FileTooLargeError,
    HostRoot,
    NotRegularFileError,
    join_host,
)
from certplane.agent.discovery.model import CertReference, ParseError, ReferenceRole

MAX_CONFIG_SIZE = 4 * 1024 * 1024
MAX_INCLUDE_DEPTH = 16
MAX_CONFIG_FILES = 1000


@dataclass(frozen=True)
class Directive:
    """One directive with its arguments; ``block`` holds the contents of a block or section."""

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Directive, ...] | None = None


class ConfigSyntaxError(Exception):
    """Raised by a syntax parser; the loader turns it into a recorded ParseError."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


Parser = Callable[[str, str], list[Directive]]


class ConfigLoader:
    """Reads configuration files of one server software below a :class:`HostRoot`.

    ``files`` lists every file parsed, in order; ``errors`` every problem met.
    """

    def __init__(self, host: HostRoot, source: str, parse: Parser) -> None:
        self.host = host
        self.source = source
        self._parse = parse
        self.files: list[str] = []
        self.errors: list[ParseError] = []

    def error(self, file: str, line: int, message: str) -> None:
        """Record a problem at ``file``:``line``."""
        self.errors.append(ParseError(self.source, file, line, message))

    def load(self, path: str, stack: tuple[str, ...], origin: Directive | None) -> list[Directive]:
        """The directives of ``path``, or [] (with an error recorded) when it cannot be used.

        ``stack`` holds the files that include this one (for cycle and depth checks); errors
        about the inclusion itself are reported at ``origin``, the include directive.
        """
        where = (origin.file, origin.line) if origin else (path, 0)
        if path in stack:
            self.error(*where, f"include cycle: {path} includes itself")
            return []
        if len(stack) >= MAX_INCLUDE_DEPTH or len(self.files) >= MAX_CONFIG_FILES:
            self.error(*where, f"not read: include depth or file limit reached at {path}")
            return []
        text = self._read(path, where)
        if text is None:
            return []
        self.files.append(path)
        try:
            return self._parse(text, path)
        except ConfigSyntaxError as exc:
            self.error(path, exc.line, exc.message)
            return []

    def _read(self, path: str, where: tuple[str, int]) -> str | None:
        """The text of ``path``; undecodable bytes are replaced, never fatal."""
        try:
            data = self.host.read_bytes(path, MAX_CONFIG_SIZE)
        except FileNotFoundError:
            self.error(*where, f"cannot open {path}: not found")
        except (NotRegularFileError, FileTooLargeError) as exc:
            self.error(*where, f"cannot read {path}: {exc}")
        except OSError as exc:
            self.error(*where, f"cannot read {path}: {exc.strerror or exc}")
        else:
            return data.decode("utf-8", errors="replace")
        return None


def merge_references(
    own: list[CertReference], inherited: list[CertReference], tls: bool
) -> list[CertReference]:
    """A server's references: per role its own if it has any, else the inherited ones. Only a
    server terminating TLS inherits (the directives are inert elsewhere); its own are always
    kept, as they are in its configuration."""
    available = own + (inherited if tls else [])
    merged: list[CertReference] = []
    for role in dict.fromkeys(ref.role for ref in available):
        mine = [ref for ref in own if ref.role == role]
        merged += mine or [ref for ref in available if ref.role == role]
    return merged


def cert_reference(
    directive: Directive,
    name: str,
    role: ReferenceRole,
    base: PurePosixPath,
    unresolvable: Callable[[str], str | None],
) -> CertReference:
    """The file a directive names, resolved against ``base`` the way its server would, or
    recorded as unresolvable (``unresolvable`` says why, in the server's own terms)."""
    value = directive.args[0]
    unresolved = unresolvable(value)
    return CertReference(
        directive=name,
        role=role,
        value=value,
        path=None if unresolved else str(join_host(base, value)),
        file=directive.file,
        line=directive.line,
        unresolved=unresolved,
    )
