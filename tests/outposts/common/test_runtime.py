"""The outpost runtime against a real core: first fetch, HELLO and health, refetch after
TRIGGER_UPDATE, SESSION_END handed on, reconnect with backoff after a core restart, the last
good configuration while the core is away, and a wrong token refused with a clear message."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from helpers import SECRET_KEY
from outpostkit import Core, Deployed

from tessera.core import identity
from tessera.core.crypto import Keyring
from tessera.outposts.common import backoff, client, runtime


async def _until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - started


def _runtime(deployed: Deployed, core: Core, **kwargs: Any) -> runtime.Runtime:
    fast = backoff.Backoff(base=0.1, cap=0.8)
    return runtime.Runtime(
        deployed.settings(core), "proxy", backoff=fast, hello_interval=0.5, **kwargs
    )


async def _health(core: Core, deployed: Deployed) -> list[dict[str, Any]]:
    status, body = await core.api("GET", f"outposts/instances/{deployed.outpost['pk']}/health/")
    assert status == 200, body
    return list(body)


async def test_start_fetches_the_outpost_and_its_providers(core: Core, deployed: Deployed) -> None:
    rt = _runtime(deployed, core)
    snapshot = await rt.start()
    try:
        assert snapshot.outpost.pk == deployed.outpost["pk"]
        assert snapshot.outpost.type == "proxy"
        assert [p["name"] for p in snapshot.providers] == [deployed.provider["name"]]
        assert not snapshot.from_disk
        await _until(lambda: rt.connected, 5)
        [shown] = await _health(core, deployed)
        assert shown["uid"] == rt.instance_uuid and shown["hostname"] == rt.hostname
        assert shown["version_outdated"] is False
    finally:
        await rt.stop()


async def test_trigger_update_refetches_and_calls_back(core: Core, deployed: Deployed) -> None:
    rt = _runtime(deployed, core)
    await rt.start()
    changed: list[runtime.Snapshot] = []

    async def on_config(snapshot: runtime.Snapshot) -> None:
        changed.append(snapshot)

    rt.on_config(on_config)
    try:
        await _until(lambda: rt.connected, 5)
        await asyncio.sleep(0.3)  # the refresh after connecting finds nothing new
        assert changed == []
        status, _ = await core.api(
            "PATCH",
            f"providers/proxy/{deployed.provider['pk']}/",
            json={"external_host": "https://renamed.example.com"},
        )
        assert status == 200
        took = await _until(lambda: bool(changed), 3)
        assert took < 0.2 + 1.0  # the jitter (0.2 s here) plus the fetch
        assert changed[-1].providers[0]["external_host"] == "https://renamed.example.com"
        assert rt.snapshot is changed[-1]
    finally:
        await rt.stop()


async def test_session_end_is_handed_to_the_callback(core: Core, deployed: Deployed) -> None:
    rt = _runtime(deployed, core)
    await rt.start()
    ended: list[str] = []

    async def on_session_end(digest: str) -> None:
        ended.append(digest)

    rt.on_session_end(on_session_end)
    try:
        await _until(lambda: rt.connected, 5)
        async with core.db.transaction() as tx:
            link = await identity.bootstrap.recovery_key(tx, Keyring(SECRET_KEY), "akadmin", 5)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=core.url, cookie_jar=jar) as browser:
            response = await browser.get(f"/recovery/use-token/{link}/", allow_redirects=False)
            assert response.status == 302
            cookies = {c.key: c.value for c in jar}
            response = await browser.get(
                "/api/v3/flows/executor/default-invalidation-flow/",
                headers={"X-authentik-CSRF": cookies["authentik_csrf"]},
            )
            assert (await response.json())["component"] == "xak-flow-redirect"
        await _until(lambda: bool(ended), 2)
        assert ended == [hashlib.sha256(cookies["authentik_session"].encode()).hexdigest()]
    finally:
        await rt.stop()


async def test_reconnects_with_backoff_after_a_core_restart(core: Core, deployed: Deployed) -> None:
    rt = _runtime(deployed, core)
    await rt.start()
    try:
        await _until(lambda: rt.connected, 5)
        await core.stop()
        await _until(lambda: not rt.connected, 5)
        await asyncio.sleep(1.5)  # attempts fail meanwhile, each waiting longer
        assert rt._backoff.failures >= 2
        # The last good configuration is still served, and a refresh fails without losing it.
        before = rt.snapshot
        with pytest.raises(client.CoreUnreachable):
            await rt.refresh()
        assert rt.snapshot is before
        await core.start()
        took = await _until(lambda: rt.connected, 5)
        assert took <= 0.8 + 0.5  # at most the backoff's cap, plus the handshake
        assert await _wait_health(core, deployed, rt.instance_uuid)
        await _until(lambda: rt._backoff.failures == 0, 2)  # reset once a HELLO is acknowledged
    finally:
        await rt.stop()


async def _wait_health(core: Core, deployed: Deployed, instance: str) -> list[dict[str, Any]]:
    for _ in range(40):
        shown = await _health(core, deployed)
        if any(h["uid"] == instance for h in shown):
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError("the instance did not show in health")


async def test_starts_from_the_last_good_config_while_the_core_is_down(
    core: Core, deployed: Deployed
) -> None:
    first = _runtime(deployed, core)
    fetched = await first.start()
    await first.stop()
    await core.stop()
    second = _runtime(deployed, core)
    snapshot = await second.start()
    try:
        assert snapshot.from_disk
        assert snapshot.same_config(fetched)
        assert (
            second.metrics.registry.get_sample_value("tessera_outpost_serving_cached_config") == 1
        )
        await core.start()
        await _until(lambda: second.connected, 5)
        await _until(lambda: not second.snapshot.from_disk, 3)  # refetched once back
    finally:
        await second.stop()


async def test_no_core_and_no_cached_config_is_a_clear_refusal(
    core: Core, deployed: Deployed
) -> None:
    await core.stop()
    rt = _runtime(deployed, core)
    with pytest.raises(runtime.StartupError) as refused:
        await rt.start()
    message = str(refused.value)
    assert f"cannot reach the core at {core.url}" in message
    assert "no earlier configuration" in message


async def test_attack_a_wrong_token_is_refused_with_a_clear_message(
    core: Core, deployed: Deployed
) -> None:
    rt = runtime.Runtime(deployed.settings(core, token="not-the-token"), "proxy")
    with pytest.raises(runtime.StartupError) as refused:
        await rt.start()
    assert "refused the token (HTTP 401" in str(refused.value)
    assert "AUTHENTIK_TOKEN" in str(refused.value)


async def test_attack_a_wrong_token_never_starts_from_the_cache(
    core: Core, deployed: Deployed
) -> None:
    good = _runtime(deployed, core)
    await good.start()
    await good.stop()
    rt = runtime.Runtime(deployed.settings(core, token="not-the-token"), "proxy")
    with pytest.raises(runtime.StartupError, match="refused the token"):
        await rt.start()


async def test_an_admin_token_is_not_an_outposts(core: Core, deployed: Deployed) -> None:
    from helpers import BOOTSTRAP_TOKEN

    await core.outpost("second", [])
    rt = runtime.Runtime(deployed.settings(core, token=BOOTSTRAP_TOKEN), "proxy")
    with pytest.raises(runtime.StartupError, match="exactly one outpost"):
        await rt.start()


async def test_an_outpost_of_another_type_is_refused(core: Core, deployed: Deployed) -> None:
    _, key = await core.outpost("directory", [], type="ldap")
    rt = runtime.Runtime(deployed.settings(core, token=key), "proxy")
    with pytest.raises(runtime.StartupError, match="of type 'ldap'"):
        await rt.start()


async def test_periodic_refresh_follows_refresh_interval(core: Core, deployed: Deployed) -> None:
    assert runtime.refresh_interval(client.OutpostInfo(pk="x", name="x", type="proxy")) == 300
    for given, expected in ((0, 300), (-5, 300), (10, 30), (600, 600)):
        info = client.OutpostInfo(pk="x", name="x", type="proxy", refresh_interval_s=given)
        assert runtime.refresh_interval(info) == expected
    rt = _runtime(deployed, core)
    snapshot = await rt.start()
    try:
        assert snapshot.outpost.refresh_interval_s == 300  # authentik's default, minutes=5
    finally:
        await rt.stop()
