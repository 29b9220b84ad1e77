"""The resource-exhaustion attacks of issue 22 on the in-process sandbox, one test each.

Each attack was demonstrated on a live server with sizes that freeze it; here the sizes are
small and the limits tightened so that each test shows, within a second or two and a few MiB,
that the check happens *before* the native call (the old code let the call run and charged it
afterwards, or never). The process boundary that bounds what slips past these checks is tested
in `test_sandbox_pool.py`.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tessera.core.policies import sandbox, views

MiB = 2**20
SHARED = "a = [0] * 100\nb = [a] * 100\nc = [b] * 50\n"  # 500,000 zeros through 150 lists
SMALL = sandbox.Limits(max_len=100_000)  # weighing stops sooner: the tests stay fast


def run(source: str, variables: dict[str, Any] | None = None, **options: Any) -> Any:
    return sandbox.compile(source).run(variables or {}, **options)


def refused(source: str, variables: dict[str, Any] | None = None, **options: Any) -> str:
    with pytest.raises(sandbox.LimitExceeded) as caught:
        run(source, variables, **options)
    return str(caught.value)


@contextmanager
def bounded(seconds: float = 5.0, mib: float = 4) -> Iterator[None]:
    """The block ends within `seconds` and never holds more than `mib` MiB of new objects."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < mib * MiB, f"held {peak / MiB:.1f} MiB"


# 1. Stringifying a shared nested structure natively.


@pytest.mark.parametrize(
    "call",
    [
        "ip_address(c)",
        "ip_network(c)",
        "ipaddress.ip_address(c)",
        "ipaddress.IPv4Address(c)",
        "ipaddress.IPv6Network(c)",
    ],
)
def test_ip_address_of_a_shared_nested_structure_is_weighed_first(call: str) -> None:
    with bounded():
        refused("import ipaddress\n" + SHARED + f"return {call}", limits=SMALL)


def test_ip_address_helpers_still_parse_addresses() -> None:
    source = (
        "import ipaddress\n"
        'return [ip_address("10.0.0.1") in ip_network("10.0.0.0/8"), str(ip_address(1)),'
        ' isinstance(ipaddress.ip_address("::1"), ipaddress.IPv6Address)]'
    )
    assert run(source).value == [True, "0.0.0.1", True]


def test_group_filter_with_a_shared_nested_structure_is_weighed_first() -> None:
    user = views.UserView({"pk": 1, "username": "u"}, [{"pk": 1, "name": "staff"}])
    with bounded():
        refused(SHARED + "return user.groups.filter(name__contains=c).exists()", {"user": user})
    assert run('return user.groups.filter(name__icontains="STA").count()', {"user": user}).value


def test_error_holding_a_shared_nested_structure_is_described_without_printing_it() -> None:
    source = SHARED + "raise ValueError(ValueError([c] * 10), {1: 2}.keys())"
    with bounded(mib=2), pytest.raises(sandbox.ExpressionError) as caught:
        run(source)
    assert str(caught.value).startswith("line 4: ValueError")
    assert len(str(caught.value)) < 300


# 2. `%` formatting: a key with nested parentheses hid the width.


def test_percent_key_with_nested_parentheses_hides_the_width() -> None:
    with bounded():
        refused('return "%(a(b)c)20000000s" % {"a(b)c": "x"}')
    with bounded():
        refused('return "%(a(b(c)d)e)20000000s" % {"a(b(c)d)e": "x"}')
    assert run('return "%(a(b)c)3s|%%|%(d)s" % {"a(b)c": "x", "d": 1}').value == "  x|%|1"


# 3. strftime widths.


@pytest.mark.parametrize(
    "call",
    [
        'datetime.date(2020, 1, 1).strftime("%01000000Y" * 8)',
        'datetime.datetime(2020, 1, 1).strftime("%-01000000d" * 8)',
        'datetime.time(1, 2).strftime("%01000000H" * 8)',
        'f"{datetime.date(2020, 1, 1):%01000000Y}"',
    ],
)
def test_strftime_width_is_checked_before_formatting(call: str) -> None:
    with bounded():
        refused(f"import datetime\nreturn {call}")
    assert run('import datetime\nreturn datetime.date(2020, 1, 2).strftime("%Y-%m-%d")').value


# 4. `json.loads` charged as one item.


def test_json_loads_is_charged_by_its_real_size() -> None:
    source = (
        "import json\n"
        'document = "[" + "[]," * 50000 + "[]]"\n'
        "keep = [json.loads(document) for _ in range(10)]"
    )
    message = refused(source, limits=sandbox.Limits(max_memory=8 * MiB))
    assert "MiB" in message
    assert run('import json\nreturn json.loads("[1, {\\"a\\": [2]}]")').value == [1, {"a": [2]}]


# 5. Codecs whose cost is not linear (punycode, idna) and those not on the allow-list.


@pytest.mark.parametrize(
    "call",
    [
        '("é" * 6000 + "ü" * 6000).encode("punycode")',
        'b"abc-def".decode("punycode")',
        'str(b"abc-def", "punycode")',
        '"example.com".encode("idna")',
        'b"xn--nxasmq6b".decode("idna")',
        '"abc".encode("utf-7")',
        '"abc".encode("cp1252")',
    ],
)
def test_punycode_and_codecs_off_the_allow_list_are_refused(call: str) -> None:
    with pytest.raises(sandbox.Forbidden, match="encoding"):
        run(f"return {call}")


def test_text_codecs_on_the_allow_list_still_work() -> None:
    source = (
        'return ["é".encode("utf-8"), b"\\xc3\\xa9".decode(), "é".encode("latin-1"),'
        ' str(b"ab", "ascii"), "a".encode("utf-16-le"), "é".encode("ascii", "replace")]'
    )
    assert run(source).value == [b"\xc3\xa9", "é", b"\xe9", "ab", b"a\x00", b"?"]


# 6. Native key calls spend no steps; log entries are not charged.


def test_sorted_key_ak_logger_info_is_stopped() -> None:
    with bounded(mib=8):
        message = refused("sorted(range(20000), key=ak_logger.info)")
    assert "1000 log lines" in message
    with bounded(mib=8):
        message = refused(
            "sorted(range(20000), key=ak_logger.info)",
            steps=5000,
            limits=sandbox.Limits(max_log=10**6),
        )
    assert "5000 steps" in message


def test_sorted_key_calls_spend_steps() -> None:
    for call in (
        "sorted(range(20000), key=str)",
        "max(range(20000), key=abs)",
        "xs = list(range(20000))\nxs.sort(key=abs)",
    ):
        with bounded(mib=8):
            message = refused(call, steps=5000)
        assert "5000 steps" in message


def test_log_entries_are_capped_in_number() -> None:
    for call in ('ak_logger.info("x")', 'print("x")', 'ak_message("x")'):
        message = refused(f"for _ in range(3000):\n    {call}")
        assert "log lines or messages" in message


def test_log_entries_are_charged_to_the_budget() -> None:
    limits = sandbox.Limits(max_alloc=1_000_000)
    for call in ("ak_logger.info(s)", "ak_logger.info('e', k=s)", "print(s)", "ak_message(s)"):
        refused(f's = "x" * 100000\nfor _ in range(20):\n    {call}', limits=limits)


# 7. `repr` of functions, modules and built-ins leaked module paths and heap addresses.


@pytest.mark.parametrize(
    "value",
    [
        "json.dumps",
        "json",
        "len",
        "ak_message",
        "ak_logger.info",
        '"abc".upper',
        '",".join',
        "re.search",
        "map(len, [])",
        "(x for x in [])",
        "[json.dumps, {1: ak_message}]",
        "lambda: 1",
    ],
)
def test_repr_of_a_function_or_module_leaks_no_path_or_address(value: str) -> None:
    source = (
        f"import json\nimport re\nv = {value}\n"
        'return [repr(v), str(v), f"{v}", f"{v!r}", "%s %r" % (v, v), f"{v:}"]'
    )
    for text in run(source).value:
        assert "0x" not in text and "tessera" not in text and "functools" not in text, text
        assert "<locals>" not in text and " at " not in text, text
    log = run(f"import json\nimport re\nprint({value})\nak_logger.info({value})").log
    assert all("0x" not in entry.message for entry in log)


def test_errors_naming_a_function_leak_no_address() -> None:
    for source in (
        "import json\n{}[json.dumps]",
        "import json\nraise ValueError(json.dumps, 1)",
    ):
        with pytest.raises(sandbox.ExpressionError) as caught:
            run(source)
        assert "0x" not in str(caught.value) and "tessera" not in str(caught.value)


def test_plain_data_keeps_pythons_repr() -> None:
    source = 'return [repr([1, "a", (2,), {3: None}]), str({"k": [1.5]}), f"{[1]!r}"]'
    assert run(source).value == ["[1, 'a', (2,), {3: None}]", "{'k': [1.5]}", "[1]"]
