"""The outpost refetches when its configuration changes on another core replica: two cores on
one PostgreSQL (each with its own store and pools, the bus through LISTEN/NOTIFY), the outpost
connected to the first, the change made through the second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from outpostkit import Core, Deployed

from tessera.core import config, store
from tessera.outposts.common import backoff, runtime


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
async def other_core(settings: config.Settings, core: Core) -> AsyncIterator[Core]:
    other_store = store.Store(settings)
    await other_store.open()
    running = Core(settings, other_store)
    await running.start()
    yield running
    await running.stop()
    await other_store.close()


async def test_a_change_on_another_replica_is_refetched(
    core: Core, other_core: Core, deployed: Deployed, tmp_path: Path
) -> None:
    rt = runtime.Runtime(
        deployed.settings(core), "proxy", backoff=backoff.Backoff(base=0.1, cap=0.5)
    )
    await rt.start()
    changed: list[runtime.Snapshot] = []

    async def on_config(snapshot: runtime.Snapshot) -> None:
        changed.append(snapshot)

    rt.on_config(on_config)
    try:
        for _ in range(100):
            if rt.connected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the refresh after connecting has run
        changed.clear()
        started = time.monotonic()
        status, _ = await other_core.api(
            "PATCH",
            f"providers/proxy/{deployed.provider['pk']}/",
            json={"external_host": "https://moved.example.com"},
        )
        assert status == 200
        while not changed:
            assert time.monotonic() - started < 3.0, "no refetch within 3 s"
            await asyncio.sleep(0.05)
        assert changed[-1].providers[0]["external_host"] == "https://moved.example.com"
    finally:
        await rt.stop()
