"""Prebuilt statements compiled once and run straight on ``sqlite3`` (the SQLite hot path).

SQLAlchemy spends far more per execution than SQLite does: it derives a cache key by walking
the statement, builds an execution context and a result object. certplane's repositories run a
small set of statements built once at import time, so on SQLite each is compiled once per
parameter shape, with its bind and result processors, and then executed directly on the
driver cursor. The SQL text, parameter order and type conversions are SQLAlchemy's own, taken
from its compiler; only the per-call machinery is skipped.

NOTE(events): ``before_cursor_execute`` listeners still see every statement (the test-time
tenancy guard relies on them).
Statements this module does not handle (anything but plain SELECT/INSERT/UPDATE/DELETE with
named binds) go through SQLAlchemy unchanged.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable

CACHE_SIZE = 512
_PLACEHOLDER = re.compile(r"\?|__\[POSTCOMPILE_(\w+)\]")
_FAST_KINDS = (Select, Insert, Update, Delete)

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """One statement at one parameter shape: SQL text and how to fill and read it."""

    statement: Executable
    sql: str
    getters: tuple[Callable[[Mapping[str, Any]], Any], ...]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]


class FastResult:
    """The slice of SQLAlchemy's result API the repositories use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def mappings(self) -> FastResult:
        return self

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[dict[str, Any]]:
        return self._rows


class FastExecutor:
    """Plans per (statement, parameter shape), least recently used dropped past ``CACHE_SIZE``."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._plans: OrderedDict[tuple[int, tuple[Any, ...]], _Plan] = OrderedDict()

    def handles(self, statement: Executable, parameters: object) -> bool:
        if not isinstance(statement, _FAST_KINDS):
            return False
        return parameters is None or isinstance(parameters, Mapping) or _is_rows(parameters)

    def execute(self, conn: Connection, statement: Executable, parameters: Any) -> FastResult:
        rows: Sequence[Mapping[str, Any]] = (
            [parameters or {}] if not isinstance(parameters, list) else parameters
        )
        plan = self._plan(statement, rows[0])
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return self._run(conn, cursor, plan, rows)
        finally:
            cursor.close()

    def _run(
        self, conn: Connection, cursor: Any, plan: _Plan, rows: Sequence[Mapping[str, Any]]
    ) -> FastResult:
        values = [tuple(get(row) for get in plan.getters) for row in rows]
        many = len(values) > 1
        if conn._has_events or conn.engine._has_events:
            conn.dispatch.before_cursor_execute(conn, cursor, plan.sql, values, None, many)
        if many:
            cursor.executemany(plan.sql, values)
        else:
            cursor.execute(plan.sql, values[0])
        if not plan.keys:
            return FastResult([], cursor.rowcount)
        return FastResult([_row(plan, raw) for raw in cursor.fetchall()], cursor.rowcount)

    def _plan(self, statement: Executable, params: Mapping[str, Any]) -> _Plan:
        shape = (tuple(sorted(params)), _expanding_lengths(params))
        key = (id(statement), shape)
        plan = self._plans.get(key)
        if plan is not None and plan.statement is statement:
            self._plans.move_to_end(key)
            return plan
        plan = _compile(statement, params, self._dialect)
        self._plans[key] = plan
        if len(self._plans) > CACHE_SIZE:
            self._plans.popitem(last=False)
        return plan


def _is_rows(parameters: object) -> bool:
    return (
        isinstance(parameters, list)
        and bool(parameters)
        and all(isinstance(row, Mapping) for row in parameters)
    )


def _expanding_lengths(params: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (name, len(value))
        for name, value in sorted(params.items())
        if isinstance(value, list | tuple)
    )


def _row(plan: _Plan, raw: Sequence[Any]) -> dict[str, Any]:
    return {
        key: value if process is None or value is None else process(value)
        for key, process, value in zip(plan.keys, plan.results, raw, strict=True)
    }


def _compile(statement: Executable, params: Mapping[str, Any], dialect: Dialect) -> _Plan:
    column_keys = sorted(params) if isinstance(statement, Insert | Update) else None
    compiled = statement.compile(dialect=dialect, column_keys=column_keys)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    sql, names = _expand(compiled, params)
    getters = tuple(_getter(compiled, name, dialect) for name in names)
    keys, results = _result_shape(compiled, dialect)
    return _Plan(statement, sql, getters, keys, results)


def _expand(compiled: SQLCompiler, params: Mapping[str, Any]) -> tuple[str, list[str]]:
    """qmark SQL with every expanding (IN) bind spelled out for its length in ``params``.

    Names of expanded members are ``<bind>\x00<index>``.
    """
    positions = iter(compiled.positiontup or ())
    names: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = next(positions)
        if match.group(1) is None:
            names.append(name)
            return "?"
        bind = compiled.binds[name]
        members: Any = bind.effective_value if _is_literal(bind) else params[name]
        count = len(members)
        names.extend(f"{name}\x00{i}" for i in range(count))
        return ", ".join("?" * count) if count else "NULL"

    return _PLACEHOLDER.sub(substitute, compiled.string), names


def _getter(
    compiled: SQLCompiler, name: str, dialect: Dialect
) -> Callable[[Mapping[str, Any]], Any]:
    """How one positional value is taken: from the caller's parameters, or a literal bind."""
    bind_name, _, index = name.partition("\x00")
    bind = compiled.binds[bind_name]
    process = bind.type._cached_bind_processor(dialect)
    key = bind.key
    if _is_literal(bind):
        value: Any = bind.effective_value
        value = value[int(index)] if index else value
        literal = _processed(process, value)
        return lambda _params: literal
    if index:
        position = int(index)
        return lambda params: _processed(process, params[key][position])
    if not bind.required:  # ``.values(column=None)``: None unless the call passes a value
        return lambda params: _processed(process, params.get(key))
    return lambda params: _processed(process, params[key])


def _is_literal(bind: Any) -> bool:
    """A value written into the statement itself (``status == 'valid'``, ``LIMIT 1``)."""
    return not bind.required and bind.value is not None


def _processed(process: Processor, value: Any) -> Any:
    return value if process is None or value is None else process(value)


def _result_shape(
    compiled: SQLCompiler, dialect: Dialect
) -> tuple[tuple[str, ...], tuple[Processor, ...]]:
    columns = getattr(compiled, "_result_columns", None) or []
    keys = tuple(column[0] for column in columns)
    results = tuple(column[3]._cached_result_processor(dialect, None) for column in columns)
    return keys, results
