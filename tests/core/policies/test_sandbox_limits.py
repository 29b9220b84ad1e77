"""Resource attacks on the expression sandbox, one test each: CPU, memory, recursion.

Each must end with `LimitExceeded` (a `SandboxError`) promptly, before the native operation
allocates or spins, and never with `MemoryError` or a hang.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tessera.core.policies import sandbox


def exceeded(source: str, variables: dict[str, Any] | None = None, **options: Any) -> str:
    with pytest.raises(sandbox.LimitExceeded) as caught:
        sandbox.compile(source).run(variables or {}, **options)
    return str(caught.value)


def test_while_true_pass_stops_at_the_deadline() -> None:
    start = time.monotonic()
    message = exceeded("while True:\n    pass", steps=10**12, timeout=0.5)
    assert time.monotonic() - start < 1.5 and "0.5 seconds" in message


def test_while_true_pass_stops_at_the_step_budget() -> None:
    assert "1000 steps" in exceeded("while True:\n    pass", steps=1000)


async def test_while_true_in_a_thread_stops_at_the_deadline() -> None:
    program = sandbox.compile("x = 0\nwhile True:\n    x += 1")
    start = time.monotonic()
    with pytest.raises(sandbox.LimitExceeded):
        await asyncio.to_thread(program.run, {}, steps=10**12, timeout=0.5)
    assert time.monotonic() - start < 1.5


def test_string_repetition_a_times_10_pow_9() -> None:
    exceeded('return "a" * 10**9')


def test_list_repetition_zero_times_10_pow_9() -> None:
    exceeded("return [0] * 10**9")


def test_list_of_range_10_pow_12() -> None:
    exceeded("return list(range(10**12))")


def test_deep_recursion_via_lambda_self_application() -> None:
    assert "deep" in exceeded("return (lambda f: f(f))(lambda f: f(f))")


def test_deep_recursion_past_the_python_stack() -> None:
    limits = sandbox.Limits(max_depth=10**6)
    exceeded("f = lambda n: f(n + 1)\nreturn f(0)", limits=limits)


def test_doubling_a_string_in_a_loop() -> None:
    exceeded('s = "ab"\nwhile True:\n    s += s')


def test_doubling_a_list_with_extend() -> None:
    exceeded("xs = [1]\nfor _ in range(64):\n    xs.extend(xs)")


def test_many_large_lists_exhaust_the_allocation_budget() -> None:
    assert "created more than" in exceeded("keep = [[0] * 900_000 for _ in range(100)]")


def test_power_tower_integer() -> None:
    exceeded("return 10**10**10")


def test_squaring_an_integer_in_a_loop() -> None:
    exceeded("x = 3\nfor _ in range(64):\n    x = x * x")


def test_left_shift_bomb() -> None:
    exceeded("return 1 << 10**9")


def test_percent_format_width_bomb() -> None:
    exceeded('return "%999999999d" % 1')
    exceeded('return "%s" * 1000 % (("x" * 100000,) * 1000)')


def test_percent_format_star_width() -> None:
    with pytest.raises(sandbox.Forbidden):
        sandbox.compile('return "%*d" % (10**9, 1)').run()


def test_f_string_width_bomb() -> None:
    exceeded('return f"{1:>999999999}"')
    exceeded('w = 10**9\nreturn f"{1:>{w}}"')


def test_padding_methods_bomb() -> None:
    exceeded('return "x".center(10**9)')
    exceeded('return "1".zfill(10**9)')


def test_replace_amplification() -> None:
    exceeded('return ("a" * 100000).replace("a", "b" * 100)')
    exceeded('return ("a" * 1000).replace("", "x" * 10000)')


def test_join_amplification() -> None:
    exceeded('big = "x" * 100000\nreturn "".join([big] * 1000)')


def test_regex_sub_amplification() -> None:
    exceeded('import re\nreturn re.sub("a", "b" * 100, "a" * 100000)')
    exceeded('return regex_replace("a" * 100000, "", "b" * 20)')


def test_shared_tuple_bomb_str() -> None:
    exceeded("a = (0,) * 1000\nb = (a,) * 1000\nc = (b,) * 1000\nreturn str(c)")


def test_shared_tuple_bomb_hash() -> None:
    exceeded("a = (0,) * 1000\nb = (a,) * 1000\nc = (b,) * 1000\nreturn {c: 1}")


def test_shared_tuple_bomb_compare() -> None:
    source = "a = (0,) * 1000\nb = (a,) * 1000\nc = (b,) * 1000\n"
    source += "a2 = (0,) * 1000\nb2 = (a2,) * 1000\nc2 = (b2,) * 1000\nreturn c == c2"
    exceeded(source)


def test_shared_tuple_bomb_sort_key() -> None:
    source = "a = (0,) * 1000\nb = (a,) * 1000\nreturn sorted([1, 2], key=lambda x: (b,) * 1000)"
    exceeded(source)


def test_shared_tuple_bomb_in_an_exception_message() -> None:
    source = "a = (0,) * 1000\nb = (a,) * 1000\nc = (b,) * 1000\n"
    source += "try:\n    {}[c]\nexcept KeyError as e:\n    return str(e)"
    exceeded(source)


def test_deeply_nested_list_print() -> None:
    exceeded("x = []\nfor _ in range(5000):\n    x = [x]\nreturn str(x)", steps=10**6)


def test_zip_of_many_long_iterables() -> None:
    limits = sandbox.Limits(max_alloc=1_000_000)
    exceeded("r = range(1000000)\nreturn list(zip(*[r] * 1000))", limits=limits)


def test_round_with_huge_ndigits() -> None:
    exceeded("return round(10, -10**9)")


def test_json_dumps_separators() -> None:
    with pytest.raises(sandbox.Forbidden):
        sandbox.compile('import json\nreturn json.dumps([1, 2], separators=("x" * 99, ":"))').run()


def test_source_too_long_and_nested_too_deeply() -> None:
    with pytest.raises(sandbox.LimitExceeded):
        sandbox.compile("x = 1\n" * 20_000)
    with pytest.raises(sandbox.SandboxError):
        sandbox.compile("return " + "-" * 1000 + "1")
    with pytest.raises(sandbox.SandboxError):
        sandbox.compile("return " + "[" * 150 + "]" * 150)
