"""Apache httpd configuration syntax: logical lines, words and ``<Section>`` nesting.

As httpd reads it:

- a physical line ending in a single backslash continues on the next line (the backslash is
  dropped, the next line appended as is); the directive's line is that of its first physical
  line;
- lines whose first non-blank character is ``#`` are comments (trailing comments do not exist);
- arguments are separated by whitespace; ``"…"`` or ``'…'`` quote an argument, inside which a
  backslash before the quote character escapes it;
- ``<Name args>`` opens a section that ``</Name>`` closes; names match case-insensitively.

Errors raise :class:`~certplane.agent.discovery.configtree.ConfigSyntaxError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from certplane.agent.discovery.configtree import ConfigSyntaxError, Directive


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(first line number, text)`` of each logical line, continuations joined."""
    parts: list[str] = []
    start = 0
    for number, physical in enumerate(text.split("\n"), start=1):
        line = physical.removesuffix("\r")
        if not parts:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, "".join(parts)
        parts = []
    if parts:
        yield start, "".join(parts)


def split_words(text: str) -> list[str]:
    """The arguments of one logical line (see the module docstring for quoting)."""
    words: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return words
        if text[i] in "\"'":
            word, i = _quoted(text, i)
        else:
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            word, i = text[i:end], end
        words.append(word)


def _quoted(text: str, start: int) -> tuple[str, int]:
    """A quoted word starting at ``start``; an unterminated quote runs to the end of the line."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text) and text[i] != quote:
        if text[i] == "\\" and text[i + 1 : i + 2] == quote:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def parse(text: str, file: str) -> list[Directive]:
    """The directive tree of one Apache file (includes are not followed here)."""
    stack = [_Open("", (), 0)]
    for number, raw in logical_lines(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("</"):
            _close(stack, line, number, file)
        elif line.startswith("<"):
            stack.append(_open(line, number))
        else:
            words = split_words(line)
            stack[-1].children.append(Directive(words[0], tuple(words[1:]), file, number))
    if len(stack) > 1:
        section = stack[-1]
        raise ConfigSyntaxError(section.line, f"<{section.name}> was not closed")
    return stack[0].children


@dataclass
class _Open:
    """A section being read."""

    name: str
    args: tuple[str, ...]
    line: int
    children: list[Directive] = field(default_factory=list)


def _open(line: str, number: int) -> _Open:
    if not line.endswith(">"):
        raise ConfigSyntaxError(number, f"{line.split()[0]}> directive missing closing '>'")
    words = split_words(line[1:-1])
    if not words:
        raise ConfigSyntaxError(number, "empty section name")
    return _Open(words[0], tuple(words[1:]), number)


def _close(stack: list[_Open], line: str, number: int, file: str) -> None:
    name = line[2:].removesuffix(">").strip()
    if len(stack) == 1:
        raise ConfigSyntaxError(number, f"</{name}> without matching <{name}> section")
    section = stack[-1]
    if name.lower() != section.name.lower():
        message = f"expected </{section.name}> but saw </{name}>"
        raise ConfigSyntaxError(number, message)
    stack.pop()
    block = tuple(section.children)
    stack[-1].children.append(Directive(section.name, section.args, file, section.line, block))
