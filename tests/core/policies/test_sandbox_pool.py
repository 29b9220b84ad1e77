"""The process boundary around expressions (`policies.pool`): what the in-process checks cannot
bound, the worker's rlimits and the parent's deadline do, and the event loop never waits.

A native call that never returns to the sandbox's checks is simulated with limits loosened for
the test (a huge integer power); the pools here are small and closed by each test.
"""

from __future__ import annotations

import asyncio
import os
import time
import types
from collections.abc import Iterator
from typing import Any, cast

import pytest

from tessera.core import crypto
from tessera.core.policies import engine, expression, pool, sandbox, views
from tessera.core.providers.oauth2 import clients, tokens
from tessera.core.stages import password

LAX = sandbox.Limits(max_int_bits=10**9)  # lets `3 ** 10**7` run natively for seconds
SLOW = "x = 3 ** 10**7\nreturn True"


@pytest.fixture(scope="module")
def small() -> Iterator[pool.Pool]:
    """One worker for the tests of this module (a worker takes a moment to start)."""
    workers = pool.Pool(pool.Settings(size=1, memory_mib=256, grace=0.3))
    workers.start()
    yield workers
    workers.close()


class Ticker:
    """Measures the longest pause of the event loop while it runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_native_call_past_the_deadline_is_killed_and_the_loop_stays_responsive(
    small: pool.Pool,
) -> None:
    await small.run("return 1", {}, shape="truth", steps=100, seconds=1)  # started
    (first,) = small.pids()
    replaced = small.replaced
    start = time.monotonic()
    with Ticker() as ticker, pytest.raises(sandbox.LimitExceeded, match=r"0\.3 seconds"):
        await small.run(SLOW, {}, shape="truth", steps=1000, seconds=0.3, limits=LAX)
    assert time.monotonic() - start < 5.0  # 0.3 s, the grace of 0.3 s, and a busy machine
    assert ticker.longest < 0.5, f"the event loop paused {ticker.longest:.2f} s"
    assert small.replaced == replaced + 1 and _gone(first)
    result = await small.run("return 2 + 2", {}, shape="text", steps=100, seconds=1)
    assert result.value == "4"  # the replacement serves the next run


async def test_allocation_past_the_address_space_limit_fails_in_the_worker(
    small: pool.Pool,
) -> None:
    lax = sandbox.Limits(max_len=10**10, max_alloc=10**10, max_memory=10**10)
    with pytest.raises(sandbox.LimitExceeded, match="memory"):
        await small.run(
            'return len("a" * 600_000_000)', {}, shape="truth", steps=100, seconds=2, limits=lax
        )
    assert (await small.run("return [1] * 3", {}, shape="text", steps=100, seconds=1)).value


async def test_cpu_time_past_the_rlimit_kills_the_worker() -> None:
    workers = pool.Pool(pool.Settings(size=1, memory_mib=256, grace=120))
    try:
        with pytest.raises(sandbox.LimitExceeded, match="CPU"):  # after 2 s of CPU, not 120 s
            await workers.run(SLOW, {}, shape="truth", steps=1000, seconds=0.1, limits=LAX)
        assert workers.replaced == 1
    finally:
        workers.close()


async def test_cancelled_run_kills_its_worker(small: pool.Pool) -> None:
    await small.run("return 1", {}, shape="truth", steps=100, seconds=1)
    (first,) = small.pids()
    replaced = small.replaced
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            small.run(SLOW, {}, shape="truth", steps=1000, seconds=5, limits=LAX), 0.2
        )
    for _ in range(100):
        if small.replaced > replaced:
            break
        await asyncio.sleep(0.02)
    assert small.replaced == replaced + 1 and _gone(first)


async def test_hooks_are_answered_by_the_parent(small: pool.Pool) -> None:
    asked: list[Any] = []

    async def user_by(filters: Any) -> views.UserView:
        asked.append(filters)
        await asyncio.sleep(0)
        return views.UserView({"pk": 7, "username": filters["username"]}, [{"name": "ops"}])

    async def call_policy(args: Any) -> bool:
        return bool(args[0] == "allow")

    source = (
        'found = ak_user_by(username="bob")\n'
        'return [found.username, ak_is_group_member(found, name="ops"), ak_call_policy("allow")]'
    )
    hooks = {"user_by": user_by, "call_policy": call_policy}
    result = await small.run(source, {}, shape="text", steps=1000, seconds=1, hooks=hooks)
    assert result.value == "['bob', True, True]" and asked == [{"username": "bob"}]
    with pytest.raises(sandbox.Forbidden, match="ak_user_by is not available"):
        await small.run("return ak_user_by(username='x')", {}, shape="truth", steps=10, seconds=1)


async def test_results_cross_as_plain_data(small: pool.Pool) -> None:
    user = views.UserView({"pk": 1, "username": "u"})
    source = 'ak_message("m")\nak_logger.info("e", k=1)\nreturn {"user": user, "n": [1, (2,)]}'
    result = await small.run(source, {"user": user}, shape="claims", steps=100, seconds=1)
    assert result.value == {"user": "u", "n": [1, [2]]} and result.messages == ["m"]
    assert result.log[0].message == "e" and result.log[0].attributes == {"k": "1"}
    text = await small.run("return user", {"user": user}, shape="text", steps=100, seconds=1)
    assert text.value == "u"
    assert (await small.run("return 1", {}, shape="claims", steps=100, seconds=1)).value is None


async def test_closing_the_pool_leaves_no_process() -> None:
    workers = pool.Pool(pool.Settings(size=2))
    workers.start()
    pids = workers.pids()
    assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
    workers.close()
    assert all(_gone(pid) for pid in pids)


# The attacks of issue 22 that the old code ran on the event loop or in the shared thread pool.

SHARED = "a = [0] * 100\nb = [a] * 100\n"


async def test_scope_mapping_returning_a_structure_that_json_encoding_expands() -> None:
    program = sandbox.compile(SHARED + 'return {"x": [b] * 500}')
    mapping = clients.Mapping("pk", "custom", "Custom", None, program)
    client = types.SimpleNamespace(mappings={"custom": [mapping]}, application=None)
    subject = tokens.Subject({"pk": 1, "username": "u", "email": "", "name": ""})
    start = time.monotonic()
    with Ticker() as ticker:
        claims = await tokens.scope_claims(cast(Any, client), subject, ["custom"])
    assert claims == {}  # refused in the worker, before encoding
    assert time.monotonic() - start < 10.0 and ticker.longest < 0.5


async def test_six_concurrent_punycode_runs_do_not_stall_password_verification() -> None:
    attack = 'text = "".join([chr(19968 + i) for i in range(3000)])\nreturn text.encode("punycode")'
    kind = expression.Expression(expression.Config(expression=attack))
    stored = crypto.passwords.hash_password("secret")
    runs = [asyncio.ensure_future(kind.evaluate(engine.Request(None))) for _ in range(6)]
    await asyncio.sleep(0.05)
    start = time.monotonic()
    assert await password._verify(stored, "secret")
    assert time.monotonic() - start < 2.0, "password verification waited for expressions"
    results = await asyncio.gather(*runs, return_exceptions=True)
    assert all(isinstance(r, sandbox.Forbidden) for r in results), results


async def test_prompt_initial_value_of_a_shared_structure_is_not_printed_on_the_event_loop() -> (
    None
):
    # What the prompt stage asks for: the value's text, made (and weighed) in the worker.
    # The old stage ran `str(result.value)` on the event loop: here 15 MB of text.
    with Ticker() as ticker, pytest.raises(sandbox.LimitExceeded, match="too large"):
        await pool.evaluate(SHARED + "return [b] * 500", {}, shape="text", steps=1000, seconds=1)
    assert ticker.longest < 0.5
    result = await pool.evaluate("return [1, None]", {}, shape="text", steps=100, seconds=1)
    assert result.value == "[1, None]"


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ('return ["a", 2, None]', ["a", "2"]),
        ("return 7", ["7"]),
        ("return None", []),
        ('return ("x", "y")', ["x", "y"]),
    ],
)
async def test_values_shape_is_a_list_of_texts(
    small: pool.Pool, source: str, values: list[str]
) -> None:
    """A SAML property mapping's result: one text per value, as JSON from the worker."""
    result = await small.run(source, {}, shape="values", steps=1000, seconds=2)
    assert result.value == values


async def test_values_shape_is_bounded(small: pool.Pool) -> None:
    with pytest.raises(sandbox.SandboxError):
        await small.run("return list(range(5000))", {}, shape="values", steps=100_000, seconds=2)
