"""Cached policy results: reused for the same policy settings, user and address for a short
time; never across users, addresses or edited settings; never with a flow context; never for
errors or for kinds that read changing state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tessera.core.cache import memory
from tessera.core.policies import engine, kinds

CALLS: list[str] = []


class CountingConfig(kinds.PolicyConfig):
    result: bool = True
    fail: bool = False


class Counting(kinds.Kind):
    """A test kind that records each evaluation (the engine's cache is what is under test)."""

    kind = "counting"
    Config = CountingConfig
    cacheable: ClassVar[bool] = True

    async def evaluate(self, request: engine.Request) -> kinds.Verdict:
        assert isinstance(self.config, CountingConfig)
        CALLS.append(str(request.user["pk"] if request.user else "-"))
        if self.config.fail:
            raise kinds.PolicyError("boom")
        return kinds.Verdict(self.config.result, [] if self.config.result else ["no"])


@pytest.fixture(autouse=True)
def _register() -> Iterator[None]:
    kinds.KINDS["counting"] = Counting
    CALLS.clear()
    yield
    kinds.KINDS.pop("counting", None)


def _loaded(config: dict[str, Any]) -> engine.Loaded:
    policy = {"pk": "p1", "name": "counting", "kind": "counting", "config": config}
    row = {
        "pk": "b1",
        "policy": "p1",
        "group": None,
        "user": None,
        "negate": False,
        "timeout": 5,
        "failure_result": False,
    }
    return engine.Loaded([row], {"p1": policy}, set())


async def _decide(cache: Any, config: dict[str, Any], user: int, ip: str = "192.0.2.1", **ctx: Any):  # type: ignore[no-untyped-def]
    request = engine.Request(user={"pk": user}, client_ip=ip, cache=cache, context=ctx)
    return await engine.decide(_loaded(config), "all", request)


async def test_same_user_and_address_reuse_the_result() -> None:
    cache = memory.MemoryCache()
    assert (await _decide(cache, {"result": False}, 1)).passing is False
    assert (await _decide(cache, {"result": False}, 1)).passing is False
    assert CALLS == ["1"]
    await _decide(cache, {"result": False}, 2)  # another user
    await _decide(cache, {"result": False}, 1, ip="192.0.2.9")  # another address
    await _decide(cache, {"result": True}, 1)  # edited settings
    assert len(CALLS) == 4


async def test_flow_context_errors_and_uncacheable_kinds_are_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = memory.MemoryCache()
    await _decide(cache, {}, 1, prompt_data={"password": "x"})
    await _decide(cache, {}, 1, prompt_data={"password": "x"})
    assert len(CALLS) == 2
    for _ in range(2):
        result = await _decide(cache, {"fail": True}, 1)
        assert result.error and result.passing is False
    assert len(CALLS) == 4
    monkeypatch.setattr(Counting, "cacheable", False)
    await _decide(cache, {}, 3)
    await _decide(cache, {}, 3)
    assert len(CALLS) == 6


async def test_results_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setattr(engine, "RESULT_TTL", 0.2)
    cache = memory.MemoryCache()
    await _decide(cache, {}, 1)
    await asyncio.sleep(0.3)
    await _decide(cache, {}, 1)
    assert len(CALLS) == 2
