"""Regular expressions in the sandbox: catastrophic backtracking stops at the run's deadline (the
smaller of the sandbox's limit and the binding's timeout), as a policy error and a
`policy_exception` event; the patterns people write keep working as with `re`."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tessera.core.identity import util
from tessera.core.policies import engine, expression, sandbox
from tessera.core.store import crud

EVIL = r"(a|aa)+$"  # exponential in `regex` as in `re`: every split of the a's is tried
SUBJECT = '"a" * 60 + "b"'
BUDGET = 0.5  # seconds
BOUND = 2.0  # seconds: generous for a shared machine, far below the minutes the match needs


# `regex` counts the CPU time its matching spends against `timeout=`, so on a busy machine (the
# suite's own parallel workers) a stopped match can take several times its budget in wall time.
# The bounds on a match are therefore on the CPU time this process spent: a match that did not
# stop would spend minutes of it.
def stopped(source: str, timeout: float = BUDGET) -> tuple[str, float]:
    start = time.process_time()
    with pytest.raises(sandbox.LimitExceeded) as caught:
        sandbox.compile(source).run({}, timeout=timeout, steps=10**9)
    return str(caught.value), time.process_time() - start


@pytest.mark.parametrize(
    "source",
    [
        f'return regex_match({SUBJECT}, r"{EVIL}")',
        f'return regex_replace({SUBJECT}, r"{EVIL}", "x")',
        f'import re\nreturn re.search(r"{EVIL}", {SUBJECT})',
        f'import re\nreturn re.match(r"{EVIL}", {SUBJECT})',
        f'import re\nreturn re.fullmatch(r"{EVIL}", {SUBJECT})',
        f'import re\nreturn re.findall(r"{EVIL}", {SUBJECT})',
        f'import re\nreturn re.split(r"{EVIL}", {SUBJECT})',
        f'import re\nreturn re.subn(r"{EVIL}", lambda m: "x", {SUBJECT})',
        f'import re\nreturn [m.group() for m in re.finditer(r"{EVIL}", {SUBJECT})]',
        f'import re\nreturn re.compile(r"{EVIL}").search({SUBJECT}, 1)',
        f'import re\nreturn re.compile(r"{EVIL}").sub("", {SUBJECT})',
    ],
)
def test_catastrophic_backtracking_stops_at_the_deadline(source: str) -> None:
    message, took = stopped(source)
    assert took < BOUND, took
    assert "0.5 seconds" in message


def test_catastrophic_backtracking_cannot_be_caught_by_the_expression() -> None:
    source = (
        f'import re\ntry:\n    re.search(r"{EVIL}", {SUBJECT})\n'
        "except Exception:\n    pass\nreturn True"
    )
    _, took = stopped(source)
    assert took < BOUND


def test_a_callable_replacement_that_backtracks_stops_at_the_deadline() -> None:
    source = (
        "import re\n"
        f'slow = lambda m: "x" if re.search(r"{EVIL}", {SUBJECT}) else "y"\n'
        'return re.sub("a", slow, "aaaa")'
    )
    _, took = stopped(source)
    assert took < BOUND


def test_the_time_already_spent_counts() -> None:
    """A match starting late gets only what is left of the run's budget."""
    source = (
        "n = 0\nwhile n < 40000:\n    n += 1\n"  # spend part of the budget first
        f'return regex_match({SUBJECT}, r"{EVIL}")'
    )
    _, took = stopped(source, timeout=0.8)
    assert took < 0.8 + BOUND - BUDGET


async def test_a_long_match_does_not_stall_the_event_loop() -> None:
    """`concurrent=True`: the match releases the GIL, so the loop keeps serving meanwhile."""
    program = sandbox.compile(f'return regex_match({SUBJECT}, r"{EVIL}")')
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with pytest.raises(sandbox.LimitExceeded):
        await asyncio.to_thread(program.run, {}, timeout=1.0)
    ticker.cancel()
    assert ticks > 20, ticks  # about 100 when the loop is never blocked


def test_patterns_people_write_still_work() -> None:
    source = r"""import re
return [
    regex_match("bob@mail.example.org", r"^[\w.+-]+@([\w-]+\.)+[\w-]{2,}$"),
    regex_match("Word word word", r"^(\w+\s?)+$"),
    regex_replace("a  b\tc", r"\s+", " "),
    regex_replace("john.doe", r"(\w+)\.(\w+)", r"\2, \1"),
    re.sub(r"(?P<x>\d)", r"<\g<x>>", "a1b2"),
    re.subn("x*", "-", "abxd"),
    re.split(r"[,;]\s*", "a, b;c", 1),
    re.findall(r"(\w)=(\d)", "a=1 b=2"),
    [m.span() for m in re.finditer(r"\d+", "1 22 333")],
    re.compile(r"HELLO", re.I).fullmatch("hello") is not None,
    re.match(r"^b", "a\nb", re.M) is None,
    re.search(r"^b", "a\nb", re.M).group(),
    re.sub(r"\d", lambda m: str(int(m.group()) * 2), "a1b4"),
    re.compile(r"(\d+)-(\d+)").match("10-20").groups(),
    re.escape("a.b"),
]"""
    assert sandbox.compile(source).run().value == [
        True,
        True,
        "a b c",
        "doe, john",
        "a<1>b<2>",
        ("-a-b--d-", 5),
        ["a", "b;c"],
        [("a", "1"), ("b", "2")],
        [(0, 1), (2, 4), (5, 8)],
        True,
        True,
        "b",
        "a2b8",
        ("10", "20"),
        r"a\.b",
    ]


def test_regex_only_flags_and_arguments_are_not_offered() -> None:
    for source in (
        'import re\nreturn re.compile("a", 256)',  # regex.VERSION1 in `regex`
        'import re\nreturn re.compile("a").findall("aaa", 0, 3, True)',  # `overlapped`
        'import re\nreturn re.compile("a").search("a", 0, 1, True, True)',  # `partial`
    ):
        with pytest.raises(sandbox.SandboxError):
            sandbox.compile(source).run()


def test_an_invalid_pattern_is_an_expression_error() -> None:
    with pytest.raises(sandbox.ExpressionError):
        sandbox.compile('return regex_match("x", "(")').run()
    source = 'import re\ntry:\n    re.compile("(")\nexcept re.error:\n    return "caught"'
    assert sandbox.compile(source).run().value == "caught"


async def _bound(db: Any, source: str, timeout: int) -> str:
    pk = str(uuid.uuid4())
    async with db.transaction() as tx:
        await crud.insert(
            tx,
            "policies",
            {
                "pk": pk,
                "name": f"regex-{pk[:6]}",
                "kind": "expression",
                "config": {"expression": source},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {"pk": str(uuid.uuid4()), "target": pk, "policy": pk, "order": 0, "timeout": timeout},
        )
    return pk


async def _exception_events(db: Any) -> list[dict[str, Any]]:
    async with db.read() as tx:
        return await crud.rows(tx, "events", [crud.Filter("action", "eq", "policy_exception")])


async def test_the_binding_timeout_bounds_the_match_when_it_is_smaller(
    bootstrapped: Any,
) -> None:
    """Binding timeout 1 s, sandbox limit 5 s: the thread stops after about 1 s, not 5."""
    pk = await _bound(bootstrapped, f'return regex_match({SUBJECT}, r"{EVIL}")', timeout=1)
    start = time.monotonic()
    result = await engine.evaluate(bootstrapped, pk, "all", engine.Request(user=None))
    assert time.monotonic() - start < 1 + BOUND
    assert not result.passing and result.error
    # The worker thread stopped too (cancelling the await alone would leave it matching for
    # the sandbox's 5 s): the process burns no CPU once the engine has returned.
    cpu = time.process_time()
    await asyncio.sleep(1.0)
    assert time.process_time() - cpu < 0.5
    assert [e["context"]["policy"]["pk"] for e in await _exception_events(bootstrapped)] == [pk]


async def test_the_sandbox_limit_bounds_the_match_when_it_is_smaller(
    bootstrapped: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expression, "TIMEOUT", BUDGET)
    pk = await _bound(bootstrapped, f'return regex_match({SUBJECT}, r"{EVIL}")', timeout=30)
    start = time.process_time()  # CPU time: see `stopped`
    result = await engine.evaluate(bootstrapped, pk, "all", engine.Request(user=None))
    assert time.process_time() - start < BOUND
    assert not result.passing and result.error
    [event] = await _exception_events(bootstrapped)
    # The regex's own timeout says so; on a busy machine it may overshoot, and then the pool
    # stops the worker process at the deadline's grace (`policies.pool`).
    message = event["context"]["message"]
    assert "regular expression" in message or "process was stopped" in message
