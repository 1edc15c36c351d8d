"""CEL rules: compile checks, every variable, fail-closed errors and the time limit."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certplane.policy.cel import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_VALUE_LENGTH,
    VARIABLES,
    CelCompileError,
    CelEvaluationError,
    CelTimeout,
    compile_rule,
)

VARS: dict[str, Any] = {
    "identifiers": [
        {"type": "dns", "value": "www.example.com", "wildcard": False},
        {"type": "dns", "value": "*.example.com", "wildcard": True},
        {"type": "ip", "value": "192.0.2.7", "wildcard": False},
    ],
    "account": {"id": "acct-1", "contact": ["mailto:ops@example.com"], "eab_kid": "kid-123"},
    "eab": {"kid": "kid-123", "label": "ci"},
    "csr_key": {"algorithm": "ec-p256", "type": "ec", "bits": 256},
    "profile": "default",
}
TEN = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
LIMIT = 0.05
SLACK = 0.5  # behaviour, not a benchmark: "stops soon after the limit"


def run(expression: str, variables: dict[str, Any] = VARS, limit: float = 1.0) -> bool:
    return compile_rule(expression).evaluate(variables, time_limit=limit)


def compile_error(expression: str) -> str:
    with pytest.raises(CelCompileError) as excinfo:
        compile_rule(expression)
    return excinfo.value.message


def runaway(depth: int = 7) -> str:
    """``TEN.all(a, TEN.all(b, ...))``: 10**depth evaluations of the innermost body."""
    body = "true"
    for level in range(depth):
        body = f"{TEN}.all(v{level}, {body})"
    return body


def test_the_documented_variables_are_exactly_these():
    assert frozenset({"identifiers", "account", "eab", "csr_key", "profile"}) == VARIABLES


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('identifiers.exists(i, i.value == "www.example.com")', True),
        ('identifiers.exists(i, i.value.startsWith("test."))', False),
        ("identifiers.exists(i, i.wildcard)", True),
        ('identifiers.all(i, i.type == "dns")', False),
        ('identifiers.filter(i, i.type == "ip").size() == 1', True),
        ('identifiers.map(i, i.value).exists_one(v, v.endsWith(".com"))', False),
        ('account.id == "acct-1"', True),
        ('account.contact.exists(c, c.endsWith("@example.com"))', True),
        ('account.eab_kid == "kid-123"', True),
        ("account.eab_kid == null", False),
        ('eab.label == "ci"', True),
        ("eab == null", False),
        ("eab != null && null != eab", True),
        ("account.contact != null && csr_key != null", True),
        ("null != null", False),
        ('csr_key.type == "ec" && csr_key.bits >= 256', True),
        ('csr_key.algorithm == "rsa-2048"', False),
        ('profile == "default"', True),
        ('profile in ["short", "long"]', False),
        ("has(account.eab_kid)", True),
        ("type(profile) == string", True),
        ("dyn(size(identifiers)) == 3", True),
        ('identifiers.all(i, i.value.matches("^[a-z0-9.*]+$") || i.type == "ip")', True),
        ('timestamp("2025-01-01T00:00:00Z") < timestamp("2025-06-01T12:00:00.5+02:00")', True),
        ('duration("90m") > duration("2h")', False),
        ("1 / 0 == 1 || true", True),  # CEL's commutative error absorption
    ],
)
def test_rules_see_every_variable(expression: str, expected: bool):
    assert run(expression) is expected


def test_null_variables_at_stages_that_lack_them():
    variables = {
        **VARS,
        "eab": None,
        "csr_key": None,
        "account": {**VARS["account"], "eab_kid": None},
    }
    assert run("eab == null && csr_key == null && account.eab_kid == null", variables)
    assert not run("eab != null || csr_key != null || null != account.eab_kid", variables)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 +", "syntax error at line 1, column 3: unexpected end of expression"),
        ("profile ==\n  == 1", "syntax error at line 2, column 3: unexpected '=='"),
        ('profile == "a" # 1', "syntax error at line 1, column 16: unexpected character '#'"),
        ("identifers.size() > 0", "unknown variable 'identifers' at line 1, column 1"),
        ("identifiers.all(i, j)", "unknown variable 'j' at line 1, column 20"),
        ("now() > 1", "unknown function 'now' at line 1, column 1"),
        ('profile.lower() == "a"', "unknown function 'lower' at line 1, column 9"),
        ("[1].reduce(r, i, 0, r + i) == 1", "reduce() is not standard CEL (at line 1, column 5)"),
        ("identifiers.min() == 1", "min() is not standard CEL (at line 1, column 13)"),
        ("identifiers.all(i.value, true)", "all() takes a variable name and an expression"),
        ("identifiers.map(i, true, i)", "map() takes a variable name and an expression"),
        ("google.protobuf.Int32Value{value: 1} == 1", "message construction is not supported"),
        (".size(identifiers) == 3", "leading-dot function calls are not supported"),
        ('profile.matches("a(b")', "matches(): missing ): a(b (RE2 syntax) at line 1, column 17"),
        ('matches(profile, "(?P=n)")', "(RE2 syntax) at line 1, column 18"),
        ('profile.matches("(a)\\\\1")', "matches(): invalid escape sequence"),
    ],
)
def test_compile_errors_name_the_problem_and_position(expression: str, message: str):
    assert message in compile_error(expression)


def test_macro_variables_are_scoped_to_their_body():
    compile_rule("identifiers.all(i, identifiers.exists(j, i.value == j.value))")
    assert "unknown variable 'i'" in compile_error("identifiers.all(i, true) && i.wildcard")


def test_expression_length_is_bounded():
    longest = "true" + " " * (MAX_EXPRESSION_LENGTH - 4)
    assert run(longest)
    assert "longer than 4096 bytes" in compile_error(longest + " ")
    assert "longer than" in compile_error('profile == "' + "é" * 2100 + '"')  # bytes, not chars


def test_nesting_is_bounded_and_the_deepest_allowed_expression_evaluates():
    parens = MAX_DEPTH // 10  # each parenthesis is ten parse-tree levels
    assert run("(" * (parens - 1) + "true" + ")" * (parens - 1))
    assert "nests deeper than" in compile_error("(" * parens * 2 + "true" + ")" * parens * 2)
    chain = " || ".join(["false"] * (MAX_DEPTH - 12)) + " || true"
    assert run(chain)


def test_runtime_errors_are_evaluation_errors():
    with pytest.raises(CelEvaluationError, match="list index out of range"):
        run('identifiers[5].value == "x"')
    with pytest.raises(CelEvaluationError):
        run('account.missing == "x"')
    with pytest.raises(CelEvaluationError):
        run("profile + 1 == 2")


@pytest.mark.parametrize(
    ("expression", "kind"), [("1", "int"), ("profile", "string"), ("eab", "map"), ("null", "null")]
)
def test_a_non_boolean_result_is_an_evaluation_error(expression: str, kind: str):
    with pytest.raises(CelEvaluationError, match=f"evaluated to {kind}, not a bool"):
        run(expression)


def test_timestamp_reads_no_clock():
    with pytest.raises(CelEvaluationError, match="RFC 3339"):
        run('timestamp("now") > timestamp("2020-01-01T00:00:00Z")')
    with pytest.raises(CelEvaluationError, match="RFC 3339"):
        run('timestamp("2024-01-01") > timestamp("2020-01-01T00:00:00Z")')


def test_concatenation_cannot_build_huge_values():
    doubling = '["ab"]' + ".map(x, x + x + x + x + x + x + x + x)" * 8 + "[0].size() > 0"
    with pytest.raises(CelEvaluationError, match=f"longer than {MAX_VALUE_LENGTH}"):
        run(doubling)


def test_runaway_nested_macros_stop_at_the_time_limit():
    rule = compile_rule(runaway())
    started = time.monotonic()
    with pytest.raises(CelTimeout):
        rule.evaluate(VARS, time_limit=LIMIT)
    assert time.monotonic() - started < LIMIT + SLACK


def test_a_timeout_cannot_be_absorbed_by_or():
    rule = compile_rule(f"{runaway()} || true")
    with pytest.raises(CelTimeout):
        rule.evaluate(VARS, time_limit=LIMIT)


def test_catastrophic_pattern_is_linear_under_re2():
    text = "a" * 5000 + "!"
    variables = {**VARS, "profile": text}
    started = time.monotonic()
    assert run('profile.matches("^(a+)+$")', variables) is False
    assert run('profile.matches("(a|aa)*b")', variables) is False
    assert time.monotonic() - started < SLACK


def test_a_dynamic_pattern_re2_cannot_compile_fails_at_run_time():
    variables = {**VARS, "profile": "(a"}
    with pytest.raises(CelEvaluationError, match="invalid regular expression"):
        run('"abc".matches(profile)', variables)


def test_time_limit_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        compile_rule("true").evaluate(VARS, time_limit=0)


def test_concurrent_evaluations_keep_their_own_limits():
    slow = compile_rule(runaway())
    quick = compile_rule('identifiers.exists(i, i.type == "ip")')
    results: dict[str, object] = {}

    def evaluate(label: str, rule: Any, limit: float) -> None:
        started = time.monotonic()
        try:
            results[label] = rule.evaluate(VARS, time_limit=limit)
        except CelTimeout:
            results[label] = ("timeout", time.monotonic() - started)

    plan = [("short", slow, 0.05), ("long", slow, 0.3), ("q1", quick, 5.0), ("q2", quick, 5.0)]
    threads = [threading.Thread(target=evaluate, args=job) for job in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results["q1"] is True and results["q2"] is True
    short, long_ = results["short"], results["long"]
    assert isinstance(short, tuple) and short[0] == "timeout" and short[1] < 0.05 + SLACK
    assert isinstance(long_, tuple) and long_[0] == "timeout" and 0.3 <= long_[1] < 0.3 + SLACK


def test_the_callers_trace_function_is_left_alone():
    """No trace hook is used: a debugger's or coverage's tracer stays in place."""
    calls = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        calls.append(event)

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        assert run('profile == "default"')
        with pytest.raises(CelTimeout):
            compile_rule(runaway()).evaluate(VARS, time_limit=LIMIT)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)
    assert calls  # the tracer kept seeing calls during evaluation


def test_only_standard_functions_are_replaced_and_none_added():
    from celpy.evaluation import base_functions

    from certplane.policy import cel

    assert set(cel._OVERRIDES) == {"matches", "timestamp", "_+_", "_!=_"}
    assert set(cel._OVERRIDES) <= set(base_functions)


def test_a_compiled_rule_is_reusable():
    rule = compile_rule('profile == "short"')
    assert rule.evaluate({**VARS, "profile": "short"}, time_limit=1) is True
    assert rule.evaluate(VARS, time_limit=1) is False


TOKENS = [
    "identifiers", "account", "profile", "eab", "csr_key", ".", "(", ")", "[", "]", ",",
    "size", "exists", "all", "i", "==", "!=", "&&", "||", "!", "+", "-", "*", "/", "%",
    "1", "0", '"a"', "true", "null", "in", "?", ":", "value", "matches", "{", "}",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join))
)
def test_any_text_compiles_or_is_a_compile_error_and_evaluation_fails_closed(text: str):
    try:
        rule = compile_rule(text)
    except CelCompileError:
        return
    with contextlib.suppress(CelEvaluationError, CelTimeout):
        assert isinstance(rule.evaluate(VARS, time_limit=0.5), bool)
