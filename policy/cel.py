"""Tenant rules in CEL (the Common Expression Language), compiled once and evaluated with a limit.

A policy's ``rules`` (and an approval rule's ``when.cel``) are CEL expressions that must evaluate
to a boolean. :func:`compile_rule` parses and checks one; :meth:`CompiledRule.evaluate` runs it.

Variables (exactly what ``Policy.check_order``, ``check_finalize``, ``check_account`` and
``approval_rule`` pass, at every stage; nothing else is in scope):

* ``identifiers``: list of maps ``{type: string ("dns" | "ip"), value: string (lowercase; a
  wildcard as "*.example.com"), wildcard: bool}``, in the order's order; empty at ``account``.
* ``account``: map ``{id: string, contact: list of string, eab_kid: string or null}``.
* ``eab``: map ``{kid: string, label: string or null}``, or null when the account has no EAB
  binding.
* ``csr_key``: map ``{algorithm: string ("ec-p256", "rsa-2048", ...), type: string ("ec", "rsa",
  "ed25519", ...), bits: int}`` at ``finalize``; null at the other stages.
* ``profile``: string, the certificate profile the order names ("default" when none).

Standard CEL only (cel-spec language definition): operators, ``size``, ``contains``,
``startsWith``, ``endsWith``, ``matches``, the type conversions and the timestamp/duration
accessors, and the macros ``has``, ``dyn``, ``all``, ``exists``, ``exists_one``, ``map`` and
``filter``. celpy's own extensions (``reduce``, ``min``), message construction and leading-dot
calls are refused at compile time, as are unknown variables and functions, so a typo is a
policy error and not a refusal of every request. No extension function is registered: the only
functions handed to celpy replace four standard ones with stricter or corrected implementations:

* ``matches`` runs on RE2 (``google-re2``): linear time whatever the pattern. A literal pattern
  RE2 cannot compile (backreferences, look-around) is a compile error.
* ``timestamp`` accepts RFC 3339 text only; celpy's would also accept "now" and read the clock.
* ``_+_`` refuses to build a string, bytes or list longer than :data:`MAX_VALUE_LENGTH`, so a
  few nested macros cannot double a value into gigabytes between two deadline checks.
* ``_!=_`` answers ``eab != null`` (celpy's raises "no such overload" for a map or list and null,
  while its ``==`` answers).

Nothing here touches files, the network, the environment or the clock, except the time-zone
database that CEL's timestamp accessors take a zone name for (``getHours("Europe/Paris")``).

Time limit. CEL is not Turing complete, but nested macros are exponential. celpy interprets
the parse tree with a ``lark`` Interpreter, and every node, including each iteration of a macro
body (run by a sub-evaluator), goes through ``visit`` or ``visit_children``.
:class:`_BoundedEvaluator` checks a per-evaluation deadline there and raises a private
``BaseException`` that no celpy handler catches. No trace function, thread or signal is used:
the state is per call, so concurrent evaluations in several threads each keep their own limit,
and debuggers or coverage tools keep theirs. Between two checks only one primitive operation
runs, on values the evaluation itself built (and ``_+_`` bounds), so the overrun is small.

Fails closed. :class:`CelTimeout` (limit reached) and :class:`CelEvaluationError` (runtime
error, such as an index out of range, or a non-boolean result) are both raised to the policy,
which treats them as a refusal (or, for an approval rule, as a match).
"""

from __future__ import annotations

import datetime
import logging
import operator
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import lark
import re2
from celpy import celtypes
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import Activation, CELEvalError, Evaluator, Result, bool_ne, celstr
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

MAX_EXPRESSION_LENGTH = 4096  # UTF-8 bytes of one expression
MAX_DEPTH = 100  # parse-tree levels: celpy recurses about 6 Python frames a level
MAX_VALUE_LENGTH = 65536  # longest string, bytes or list that ``+`` may build

VARIABLES = frozenset({"identifiers", "account", "eab", "csr_key", "profile"})

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_FUNCTION_MACROS = frozenset({"has", "dyn"})
_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "type",
        "bool", "bytes", "double", "duration", "int", "string", "timestamp", "uint",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth",
        "getHours", "getMilliseconds", "getMinutes", "getSeconds",
    }
)  # fmt: skip
_TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"}
)
_CELPY_EXTENSIONS = frozenset({"reduce", "min"})
_STRING_TOKENS = frozenset({"STRING_LIT", "MLSTRING_LIT"})
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


class CelCompileError(Exception):
    """The expression is not an acceptable rule; ``message`` names the position when known."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CelEvaluationError(Exception):
    """The rule failed at run time or did not produce a boolean (the policy refuses)."""


class CelTimeout(Exception):
    """The rule ran out of time (the policy refuses)."""


# -- compiling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    """A checked CEL expression, ready to evaluate any number of times, from any thread."""

    expression: str
    _ast: lark.Tree[Any] = field(repr=False, compare=False)

    def evaluate(self, variables: Mapping[str, Any], *, time_limit: float) -> bool:
        """Evaluate with ``variables`` (plain JSON-like Python values, see the module docstring).

        Raises :class:`CelTimeout` once ``time_limit`` seconds have passed, and
        :class:`CelEvaluationError` for a runtime error or a non-boolean result.
        """
        if time_limit <= 0:
            raise ValueError("time_limit must be positive")
        context = {name: _to_cel(value) for name, value in variables.items()}
        deadline = _Deadline(time.monotonic() + time_limit)
        evaluator = _BoundedEvaluator(self._ast, Activation(functions=_OVERRIDES), deadline)
        value = _run(evaluator, context, deadline)
        if not isinstance(value, celtypes.BoolType):
            raise CelEvaluationError(f"the rule evaluated to {_type_name(value)}, not a bool")
        return bool(value)


def compile_rule(expression: str) -> CompiledRule:
    """Parse and check one rule. Raises :class:`CelCompileError` with the line and column."""
    if len(expression.encode("utf-8")) > MAX_EXPRESSION_LENGTH:
        raise CelCompileError(f"expression is longer than {MAX_EXPRESSION_LENGTH} bytes")
    ast = _parse(expression)
    _check_tree(ast)
    return CompiledRule(expression, ast)


def _parse(expression: str) -> lark.Tree[Any]:
    # NOTE(threads): one CELParser per call; the instance keeps the text it parses.
    try:
        return CELParser().parse(expression)
    except CELParseError as error:
        raise CelCompileError(_syntax_message(error)) from None


def _syntax_message(error: CELParseError) -> str:
    cause = error.__context__
    if isinstance(cause, UnexpectedToken):
        token = cause.token
        what = "end of expression" if token.type == "$END" else repr(str(token))
        what = f"unexpected {what}"
    elif isinstance(cause, UnexpectedCharacters):
        what = f"unexpected character {cause.char!r}"
    else:
        what = str(error).splitlines()[0] if str(error) else "invalid syntax"
    return f"syntax error at {_where(error.line, error.column)}: {what}"


def _where(line: int | None, column: int | None) -> str:
    return f"line {line or '?'}, column {column or '?'}"


def _position(node: lark.Tree[Any] | lark.Token) -> str:
    if isinstance(node, lark.Token):
        return _where(node.line, node.column)
    meta = node.meta
    return _where(getattr(meta, "line", None), getattr(meta, "column", None))


# -- static checks -----------------------------------------------------------------------------

_Frame = tuple[lark.Tree[Any], int, frozenset[str]]


def _check_tree(ast: lark.Tree[Any]) -> None:
    """Depth, names in scope, macro shapes and literal regular expressions (iteratively)."""
    stack: list[_Frame] = [(ast, 1, frozenset())]
    while stack:
        node, depth, bound = stack.pop()
        if depth > MAX_DEPTH:
            raise CelCompileError(f"expression nests deeper than {MAX_DEPTH} levels")
        for child, child_bound in _scoped_children(node, bound):
            stack.append((child, depth + 1, child_bound))


def _scoped_children(
    node: lark.Tree[Any], bound: frozenset[str]
) -> Iterator[tuple[lark.Tree[Any], frozenset[str]]]:
    """Check ``node`` itself; yield the subtrees to check, with the macro variables they see."""
    kind = node.data
    if kind in ("ident", "dot_ident"):
        _check_variable(_token(node.children[-1]), bound if kind == "ident" else frozenset())
        return
    if kind == "dot_ident_arg":
        raise CelCompileError(f"leading-dot function calls are not supported at {_position(node)}")
    if kind == "member_object":
        raise CelCompileError(f"message construction is not supported at {_position(node)}")
    if kind == "ident_arg":
        _check_function_call(node)
    elif kind == "member_dot":
        yield node.children[0], bound  # the IDENT is a field name, not a variable
        return
    elif kind == "member_dot_arg":
        yield from _method_children(node, bound)
        return
    for child in node.children:
        if isinstance(child, lark.Tree):
            yield child, bound


def _check_variable(token: lark.Token, bound: frozenset[str]) -> None:
    name = str(token)
    if name not in VARIABLES and name not in bound and name not in _TYPE_NAMES:
        known = ", ".join(sorted(VARIABLES))
        raise CelCompileError(
            f"unknown variable {name[:64]!r} at {_position(token)} (variables: {known})"
        )


def _check_function_call(node: lark.Tree[Any]) -> None:
    """``name(args)``: a standard function or ``has``/``dyn``."""
    token = _token(node.children[0])
    name = str(token)
    if name not in _FUNCTIONS and name not in _FUNCTION_MACROS:
        raise CelCompileError(f"unknown function {name[:64]!r} at {_position(token)}")
    args = _arguments(node.children[1] if len(node.children) > 1 else None)
    if name == "matches" and len(args) == 2:
        _check_literal_pattern(args[1])


def _method_children(
    node: lark.Tree[Any], bound: frozenset[str]
) -> Iterator[tuple[lark.Tree[Any], frozenset[str]]]:
    """``target.name(args)``: a macro binds its variable in its body; a method is a function."""
    target, token = node.children[0], _token(node.children[1])
    name = str(token)
    args = _arguments(node.children[2] if len(node.children) > 2 else None)
    yield target, bound
    if name in _MACROS:
        variable = _macro_variable(name, token, args)
        yield args[1], bound | {variable}
        return
    if name in _CELPY_EXTENSIONS:
        raise CelCompileError(f"{name}() is not standard CEL (at {_position(token)})")
    if name not in _FUNCTIONS:
        raise CelCompileError(f"unknown function {name[:64]!r} at {_position(token)}")
    if name == "matches" and len(args) == 1:
        _check_literal_pattern(args[0])
    yield from ((arg, bound) for arg in args)


def _token(child: object) -> lark.Token:
    if not isinstance(child, lark.Token):  # pragma: no cover - the grammar puts a token here
        raise CelCompileError("unexpected parse tree")
    return child


def _arguments(exprlist: object) -> list[lark.Tree[Any]]:
    if not isinstance(exprlist, lark.Tree):
        return []
    return [child for child in exprlist.children if isinstance(child, lark.Tree)]


def _macro_variable(name: str, token: lark.Token, args: list[lark.Tree[Any]]) -> str:
    """A comprehension macro takes exactly a variable name and a body (cel-spec, Macros)."""
    variable = _sole_leaf(args[0], "ident") if len(args) == 2 else None
    if variable is None:
        raise CelCompileError(
            f"{name}() takes a variable name and an expression (at {_position(token)})"
        )
    return str(variable)


def _sole_leaf(tree: lark.Tree[Any], data: str) -> lark.Token | None:
    """The token of a ``data`` node that ``tree`` is only a chain of single children over."""
    node: object = tree
    while isinstance(node, lark.Tree) and len(node.children) == 1:
        if node.data == data:
            leaf = node.children[0]
            return leaf if isinstance(leaf, lark.Token) else None
        node = node.children[0]
    return None


def _check_literal_pattern(argument: lark.Tree[Any]) -> None:
    """A literal ``matches`` pattern must compile under RE2; dynamic ones are checked at run."""
    token = _sole_leaf(argument, "literal")
    if token is None or token.type not in _STRING_TOKENS:
        return
    try:
        _regexp(str(celstr(token)))
    except re2.error as error:
        raise CelCompileError(
            f"matches(): {_re2_message(error)} (RE2 syntax) at {_position(token)}"
        ) from None


# -- evaluating --------------------------------------------------------------------------------


class _DeadlinePassed(BaseException):
    """NOTE(deadline): a BaseException on purpose; celpy turns many ``Exception`` subclasses
    into CEL error values, which ``||`` and ``exists`` may then discard."""


class _Deadline:
    __slots__ = ("at", "passed")

    def __init__(self, at: float) -> None:
        self.at = at
        self.passed = False

    def check(self) -> None:
        if self.passed or time.monotonic() >= self.at:
            self.passed = True
            raise _DeadlinePassed


class _BoundedEvaluator(Evaluator):
    """celpy's interpreter with a deadline checked at every node and every macro iteration."""

    def __init__(self, ast: lark.Tree[Any], activation: Activation, deadline: _Deadline) -> None:
        super().__init__(ast, activation)
        self._deadline = deadline

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        return _BoundedEvaluator(ast, self.activation, self._deadline)

    def visit(self, tree: lark.Tree[Any]) -> Result:
        self._deadline.check()
        result: Result = super().visit(tree)
        return result

    def visit_children(self, tree: lark.Tree[Any]) -> list[Result]:
        self._deadline.check()
        return super().visit_children(tree)


def _run(evaluator: _BoundedEvaluator, context: dict[str, Any], deadline: _Deadline) -> object:
    try:
        value: object = evaluator.evaluate(context)
    except _DeadlinePassed:
        raise CelTimeout("the rule did not finish within its time limit") from None
    except CELEvalError as error:
        _raise_if_late(deadline)
        raise CelEvaluationError(_eval_message(error)) from None
    except Exception as error:  # celpy internals, RecursionError: fail closed, say what
        _raise_if_late(deadline)
        raise CelEvaluationError(f"evaluation failed: {type(error).__name__}") from None
    _raise_if_late(deadline)
    return value


def _raise_if_late(deadline: _Deadline) -> None:
    """A result computed after the deadline fired (an exception swallowed it) is not trusted."""
    if deadline.passed:
        raise CelTimeout("the rule did not finish within its time limit")


def _eval_message(error: CELEvalError) -> str:
    args = error.args
    message = str(args[0]) if args else "error"
    if len(args) > 2 and isinstance(args[2], tuple) and args[2]:
        message += f" ({'; '.join(str(arg) for arg in args[2])})"
    return message[:200]


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__.removesuffix("Type").lower()


def _to_cel(value: object) -> Any:
    """A JSON-like Python value as celpy's CEL value (``None`` is CEL's null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(k): _to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([_to_cel(item) for item in value])
    raise TypeError(f"no CEL value for {type(value).__name__}")


# -- the standard functions we replace -----------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _regexp(pattern: str) -> Any:
    """RE2 compile; ``re2`` keeps an LRU cache of compiled patterns."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _re2_message(error: re2.error) -> str:
    detail = error.args[0] if error.args else "invalid pattern"
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def _matches(text: Result, pattern: Result) -> Result:
    """``string.matches(pattern)``: an unanchored RE2 search, as cel-spec defines it."""
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError("no such overload")
    try:
        regexp = _regexp(pattern)
    except re2.error as error:
        return CELEvalError(f"invalid regular expression: {_re2_message(error)}")
    return celtypes.BoolType(regexp.search(text) is not None)


def _timestamp(source: Result) -> Result:
    """``timestamp(string)``: RFC 3339 text only (cel-spec); a timestamp converts to itself."""
    if isinstance(source, celtypes.TimestampType):
        return source
    if not isinstance(source, str) or not _RFC3339.fullmatch(source):
        return CELEvalError("timestamp() takes an RFC 3339 date-time string")
    try:
        parsed = datetime.datetime.fromisoformat(source.upper().replace("Z", "+00:00"))
    except ValueError:
        return CELEvalError("timestamp() takes an RFC 3339 date-time string")
    return celtypes.TimestampType(parsed)


def _add(left: Result, right: Result) -> Result:
    """``_+_`` with a bound on the length of what it builds."""
    sized = (str, bytes, list)
    too_long = isinstance(left, sized) and isinstance(right, sized)
    if too_long and len(left) + len(right) > MAX_VALUE_LENGTH:  # type: ignore[arg-type]
        return CELEvalError(f"value longer than {MAX_VALUE_LENGTH} would be built")
    return operator.add(left, right)  # type: ignore[no-any-return]


def _not_equal(left: Result, right: Result) -> Result:
    """``_!=_`` that compares a map or list with null (celpy's raises "no such overload")."""
    if isinstance(left, CELEvalError) or isinstance(right, CELEvalError):
        return left if isinstance(left, CELEvalError) else right
    if left is None or right is None:
        return celtypes.BoolType((left is None) != (right is None))
    return bool_ne(left, right)


_OVERRIDES: Mapping[str, Any] = {
    "matches": _matches,
    "timestamp": _timestamp,
    "_+_": _add,
    "_!=_": _not_equal,
}

# Build the grammar once, at import, not in the first request.
CELParser()

# NOTE(logging): celpy logs every node it evaluates at DEBUG, with the repr of every variable
# (account contacts, EAB labels): a cost per node and a leak into logs. Raise a level here, in
# its own logger namespace, to see it.
logging.getLogger("celpy").setLevel(logging.INFO)
