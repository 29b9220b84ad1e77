"""The reputation policy: failed logins lower the username's and the address's scores, a
reputation policy bound to the login flow then denies it, and the scores recover with time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD

from tessera.core.cache import memory
from tessera.core.policies import reputation

FLOW = "/api/v3/flows/executor/default-authentication-flow/"


async def _attempt(client: Any, username: str, password: str) -> dict[str, Any]:
    client.session.cookie_jar.clear()
    body = await (await client.get(FLOW)).json()
    if body["component"] != "ak-stage-identification":
        return dict(body)
    await client.post(FLOW, json={"uid_field": username})
    return dict(await (await client.post(FLOW, json={"password": password})).json())


async def _bind(api: Any, **settings: Any) -> None:
    status, policy = await api(
        "POST", "policies/reputation/", json={"name": "reputation", **settings}
    )
    assert status == 201, policy
    assert policy["check_ip"] is settings.get("check_ip", True)
    _, flow = await api("GET", "flows/instances/default-authentication-flow/")
    status, binding = await api(
        "POST",
        "policies/bindings/",
        json={"target": flow["pk"], "policy": policy["pk"], "order": 0},
    )
    assert status == 201, binding


async def test_failed_logins_from_one_address_deny_the_flow_until_the_score_recovers(
    client: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reputation, "WINDOW", 1.5)
    await _bind(api, threshold=-3, check_username=False)
    for _ in range(3):
        body = await _attempt(client, "akadmin", "wrong")
        assert body["component"] == "ak-stage-password"
    body = await _attempt(client, "akadmin", BOOTSTRAP_PASSWORD)  # even the right password
    assert body["component"] == "ak-stage-access-denied"
    assert "Too many failed logins" in body["error_message"]
    await asyncio.sleep(1.6)  # the window ends: the score starts again from zero
    body = await _attempt(client, "akadmin", BOOTSTRAP_PASSWORD)
    assert body["component"] == "xak-flow-redirect", body


async def test_successes_raise_the_score_up_to_the_bound() -> None:
    cache = memory.MemoryCache()
    for _ in range(reputation.UPPER + 3):
        await reputation.record(cache, "Alice", "192.0.2.1", +1)
    assert await reputation.score(cache, "alice", "192.0.2.1") == (reputation.UPPER,) * 2
    for _ in range(-reputation.LOWER + 30):
        await reputation.record(cache, "ALICE", "192.0.2.1", -1)
    assert await reputation.score(cache, "alice", "192.0.2.1") == (reputation.LOWER,) * 2
    assert await reputation.score(cache, "bob", "192.0.2.2") == (0, 0)


async def test_threshold_is_bounded(api: Any) -> None:
    status, problem = await api(
        "POST", "policies/reputation/", json={"name": "r", "threshold": -1000}
    )
    assert status == 400 and "threshold" in problem
