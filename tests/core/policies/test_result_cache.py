"""Cached policy results: reused for the same policy settings, user and address for a short
time; never across users, addresses or edited settings; never with a flow context; never for
errors or for kinds that read changing state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import SECRET_KEY

from tessera.core import config
from tessera.core.cache import memory
from tessera.core.crypto import Keyring
from tessera.core.flows import definitions, planner
from tessera.core.identity import util
from tessera.core.policies import engine, kinds
from tessera.core.stages import base
from tessera.core.store import crud

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


async def _decide(  # type: ignore[no-untyped-def]
    cache: Any,
    config: dict[str, Any],
    user: int,
    ip: str = "192.0.2.1",
    ttl: float = 30,
    **ctx: Any,
):
    request = engine.Request(
        user={"pk": user}, client_ip=ip, cache=cache, context=ctx, result_ttl=ttl
    )
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


async def test_results_expire() -> None:
    cache = memory.MemoryCache()
    await _decide(cache, {}, 1, ttl=0.2)
    await asyncio.sleep(0.3)
    await _decide(cache, {}, 1, ttl=0.2)
    assert len(CALLS) == 2


async def test_a_ttl_of_zero_turns_reuse_off() -> None:
    cache = memory.MemoryCache()
    for _ in range(3):
        await _decide(cache, {}, 1, ttl=0)
    assert len(CALLS) == 3


def test_the_ttl_is_authentiks_cache_timeout_policies_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert config.load(data_dir=tmp_path).cache.timeout_policies == engine.DEFAULT_RESULT_TTL
    monkeypatch.setenv("AUTHENTIK_CACHE__TIMEOUT_POLICIES", "5")
    assert config.load(data_dir=tmp_path).cache.timeout_policies == 5
    monkeypatch.setenv("TESSERA_CACHE__TIMEOUT_POLICIES", "0")  # TESSERA_ names win
    assert config.load(data_dir=tmp_path).cache.timeout_policies == 0
    monkeypatch.setenv("TESSERA_CACHE__TIMEOUT_POLICIES", "-1")
    with pytest.raises(config.ConfigError, match="AUTHENTIK_CACHE__TIMEOUT_POLICIES"):
        config.load(data_dir=tmp_path)


async def test_the_setting_reaches_the_planner(make_settings: Any, bootstrapped: Any) -> None:
    """Planning a flow twice evaluates its policy once by default, twice with the TTL at 0."""
    async with bootstrapped.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
        await crud.insert(
            tx,
            "policies",
            {
                "pk": "c0ffee00-0000-4000-8000-000000000001",
                "name": "counting",
                "kind": "counting",
                "config": {},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {
                "pk": str(uuid.uuid4()),
                "target": flow["pk"],
                "policy": "c0ffee00-0000-4000-8000-000000000001",
                "order": 0,
            },
        )
    for ttl, calls in ((30, 1), (0, 2)):
        CALLS.clear()
        settings = make_settings(cache={"timeout_policies": ttl})
        services = base.Services(bootstrapped, memory.MemoryCache(), Keyring(SECRET_KEY), settings)
        for _ in range(2):
            snapshot = await definitions.Definitions(bootstrapped).get()
            state = await planner.plan(services, snapshot, flow, None, "192.0.2.1")
            assert isinstance(state, base.FlowState)
        assert len(CALLS) == calls, ttl
