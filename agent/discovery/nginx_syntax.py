"""nginx configuration syntax: a tokenizer and a block parser.

The rules follow nginx's own reader (``ngx_conf_read_token``):

- tokens are separated by whitespace; ``;`` ends a directive, ``{`` opens and ``}`` closes a
  block;
- ``#`` at the start of a token comments out the rest of the line (inside a word it is literal);
- ``"…"`` and ``'…'`` quote a token, which may span lines; a closing quote must be followed by
  whitespace, ``;`` or ``{``;
- a backslash protects the next character from being special; in the token's value ``\\"``,
  ``\\'`` and ``\\\\`` lose their backslash, ``\\t``, ``\\r``, ``\\n`` become control characters and
  any other escape is kept as written;
- an unquoted word ends at whitespace, ``;`` or ``{`` only, except that ``${`` stays in the word
  (``${var}`` syntax).

Directive lines are those of the directive's first token. Errors raise
:class:`~certplane.agent.discovery.configtree.ConfigSyntaxError` with nginx-like messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from certplane.agent.discovery.configtree import ConfigSyntaxError, Directive

_SPACE = " \t\r\n"
_UNESCAPE = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


class TokenKind(Enum):
    """What a token is."""

    WORD = "word"
    SEMICOLON = ";"
    OPEN = "{"
    CLOSE = "}"


@dataclass(frozen=True)
class Token:
    """A token and the line it starts on; ``quoted`` tells ``"{"`` from ``{``."""

    kind: TokenKind
    value: str
    line: int
    quoted: bool = False


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; raises ConfigSyntaxError on an unterminated or misplaced quote."""
    return list(_Lexer(text).tokens())


def parse(text: str, file: str) -> list[Directive]:
    """The directive tree of one nginx file (includes are not followed here)."""
    return _Parser(file).run(tokenize(text), _last_line(text))


def unescape(raw: str) -> str:
    """A token's value from its raw text (see the module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[raw[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _Lexer:
    """A cursor over the text, tracking the line number."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def tokens(self) -> Iterator[Token]:
        """The tokens from the cursor to the end of the text."""
        while (ch := self._next_significant()) is not None:
            if ch in ";{}":
                self._advance()
                yield Token(TokenKind(ch), ch, self.line)
            elif ch in "\"'":
                yield self._quoted(ch)
            else:
                yield self._word()

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _advance(self) -> str:
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def _next_significant(self) -> str | None:
        """Skip whitespace and comments; the next character, or None at the end."""
        while (ch := self._peek()) is not None:
            if ch in _SPACE:
                self._advance()
            elif ch == "#":
                while self._peek() not in (None, "\n"):
                    self._advance()
            else:
                return ch
        return None

    def _quoted(self, quote: str) -> Token:
        start = self.line
        self._advance()
        raw: list[str] = []
        while (ch := self._peek()) != quote:
            if ch is None:
                raise ConfigSyntaxError(start, f"unexpected end of file, expecting {quote}")
            raw.append(self._advance())
            if ch == "\\" and self._peek() is not None:
                raw.append(self._advance())
        self._advance()
        after = self._peek()
        if after is not None and after not in _SPACE + ";{":
            raise ConfigSyntaxError(self.line, f'unexpected "{after}" after a quoted string')
        return Token(TokenKind.WORD, unescape("".join(raw)), start, quoted=True)

    def _word(self) -> Token:
        start = self.line
        raw: list[str] = []
        while (ch := self._peek()) is not None and ch not in _SPACE + ";":
            if ch == "{" and not (raw and raw[-1] == "$"):
                break
            raw.append(self._advance())
            if ch == "\\" and self._peek() is not None:
                raw.append(self._advance())
        return Token(TokenKind.WORD, unescape("".join(raw)), start)


class _Parser:
    """Builds the directive tree from tokens with an explicit stack of open blocks."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.words: list[Token] = []
        self.stack: list[tuple[list[Token], list[Directive]]] = [([], [])]

    def run(self, tokens: list[Token], last_line: int) -> list[Directive]:
        """The top-level directives; ``last_line`` locates end-of-file errors."""
        for token in tokens:
            self._feed(token)
        if self.words:
            raise ConfigSyntaxError(last_line, 'unexpected end of file, expecting ";" or "}"')
        if len(self.stack) > 1:
            raise ConfigSyntaxError(last_line, 'unexpected end of file, expecting "}"')
        return self.stack[0][1]

    def _feed(self, token: Token) -> None:
        if token.kind is TokenKind.WORD:
            self.words.append(token)
        elif token.kind is TokenKind.SEMICOLON:
            self._require_words(token)
            self.stack[-1][1].append(self._directive(self.words, None))
            self.words = []
        elif token.kind is TokenKind.OPEN:
            self._require_words(token)
            self.stack.append((self.words, []))
            self.words = []
        else:
            self._close(token)

    def _close(self, token: Token) -> None:
        if self.words or len(self.stack) == 1:
            raise ConfigSyntaxError(token.line, 'unexpected "}"')
        header, children = self.stack.pop()
        self.stack[-1][1].append(self._directive(header, tuple(children)))

    def _require_words(self, token: Token) -> None:
        if not self.words:
            raise ConfigSyntaxError(token.line, f'unexpected "{token.value}"')

    def _directive(self, words: list[Token], block: tuple[Directive, ...] | None) -> Directive:
        args = tuple(word.value for word in words[1:])
        return Directive(words[0].value, args, self.file, words[0].line, block)


def _last_line(text: str) -> int:
    """The line the end of the text is on (nginx counts the line after a final newline)."""
    return text.count("\n") + 1
