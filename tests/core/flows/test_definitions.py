"""The in-process copy of flow and policy definitions: served from memory, never stale after a
committed change in this process, and dropped on other replicas through the bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import test_utils
from flowkit import make_flow
from helpers import BOOTSTRAP_TOKEN

from tessera.core import app, config, store
from tessera.core.flows import definitions
from tessera.core.identity import util
from tessera.core.store import crud

EXECUTOR = "/api/v3/flows/executor/{}/"


async def test_snapshot_is_reused_until_a_config_table_changes(db: store.Store) -> None:
    defs = definitions.Definitions(db)
    first = await defs.get()
    assert await defs.get() is first
    async with db.transaction() as tx:  # not a definition: the snapshot stays
        await crud.insert(
            tx,
            "users",
            {
                "uuid": util.new_uuid(),
                "username": "u1",
                "username_folded": "u1",
                "attributes": {},
                "date_joined": util.now(),
            },
        )
    assert await defs.get() is first
    await make_flow(db, "cached-flow", [("dummy", {})])
    second = await defs.get()
    assert second is not first
    assert "cached-flow" in second.flows
    assert len(second.bindings[second.flows["cached-flow"]["pk"]]) == 1


async def test_a_rolled_back_change_keeps_the_snapshot(db: store.Store) -> None:
    defs = definitions.Definitions(db)
    first = await defs.get()
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await crud.insert(
                tx,
                "stages",
                {
                    "pk": util.new_uuid(),
                    "name": "s",
                    "kind": "dummy",
                    "config": {},
                    "created": util.now(),
                },
            )
            raise RuntimeError("abort")
    assert await defs.get() is first


async def test_snapshot_expires_after_max_age(
    db: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = definitions.Definitions(db)
    first = await defs.get()
    monkeypatch.setattr(defs.current, "max_age", 0.0)
    assert await defs.get() is not first


async def test_concurrent_requests_share_one_load(db: store.Store) -> None:
    defs = definitions.Definitions(db)
    snapshots = await asyncio.gather(*(defs.get() for _ in range(20)))
    assert all(s is snapshots[0] for s in snapshots)


async def _challenge(client: test_utils.TestClient, slug: str) -> str:  # type: ignore[type-arg]
    client.session.cookie_jar.clear()
    response = await client.get(EXECUTOR.format(slug))
    assert response.status in (200, 404)
    if response.status == 404:
        return "404"
    return str((await response.json())["component"])


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_change_through_one_replica_reaches_the_other(
    bootstrapped: store.Store,
    make_settings: Callable[..., config.Settings],
    redis_prefix: str,
    aiohttp_client: Callable[..., Any],
) -> None:
    """Two core replicas on one database and one Redis: a binding changed through replica A's
    admin API takes effect on replica B at once, not after the snapshot's maximum age."""
    settings = make_settings(redis={"host": "127.0.0.1", "prefix": redis_prefix})
    other = store.Store(settings)
    await other.open()
    try:
        a = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
        b = await aiohttp_client(app.create_app(settings, other, run_tasks=False))
        await asyncio.sleep(0.2)  # both replicas subscribed
        await make_flow(bootstrapped, "replicated", [("deny", {})], designation="authentication")
        # B had no snapshot yet: it loads the flow on first use.
        assert await _challenge(b, "replicated") == "ak-stage-access-denied"
        headers = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
        status, stages_page = await _json(a, "GET", "stages/all/?search=replicated-0", headers)
        assert status == 200 and stages_page["results"], stages_page
        flow = (await _json(a, "GET", "flows/instances/replicated/", headers))[1]
        status, bindings = await _json(a, "GET", f"flows/bindings/?target={flow['pk']}", headers)
        assert status == 200 and len(bindings["results"]) == 1
        status, _ = await _json(
            a, "DELETE", f"flows/bindings/{bindings['results'][0]['pk']}/", headers
        )
        assert status == 204
        for _ in range(50):  # the bus message arrives within milliseconds
            if await _challenge(b, "replicated") == "xak-flow-redirect":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("replica B still serves the deleted binding")
        assert definitions.MAX_AGE >= 5  # the change did not arrive by expiry
    finally:
        await other.close()


async def _json(
    client: test_utils.TestClient,  # type: ignore[type-arg]
    method: str,
    path: str,
    headers: dict[str, str],
) -> tuple[int, Any]:
    response = await client.request(method, f"/api/v3/{path}", headers=headers)
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body
