"""Fixtures of the operator tests: a Kubernetes API server (kmock + `kmockkit.Emulator`) with a
kubeconfig, a real core server on SQLite with a bootstrap superuser token, and the operator itself
(`kopf.operator` as a task of the test's event loop, standalone, with ready and stop flags).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import kmockkit
import pytest
from helpers import BOOTSTRAP_TOKEN, Server
from operatorkit import start_core


@pytest.fixture
async def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[kmockkit.Cluster]:
    async with kmockkit.Emulator() as api, kmock.Server(api) as server:
        kmockkit.declare(api)
        url = str(server.url).rstrip("/")
        config = kmockkit.kubeconfig(tmp_path / "kubeconfig", url)
        monkeypatch.setenv("KUBECONFIG", str(config))
        yield kmockkit.Cluster(api, url, config)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_core(tmp_path_factory.mktemp("core"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_operator(
    cluster: kmockkit.Cluster, core: Server
) -> Callable[..., contextlib.AbstractAsyncContextManager[Any]]:
    """`async with make_operator(resync_seconds=1) as meters:` runs the operator in the block;
    `namespaces=("a", "b")` limits it to those namespaces, as `--namespace` does."""
    import kopf

    from tessera.operator import handlers, metrics
    from tessera.operator.handlers import runtime

    @contextlib.asynccontextmanager
    async def run(core_url: str | None = None, **overrides: Any) -> AsyncIterator[Any]:
        settings = {"resync_seconds": 300.0, "retry_base_seconds": 0.2, **overrides}
        config = runtime.Config(core_url or core.url, BOOTSTRAP_TOKEN, **settings)
        namespaces = list(config.namespaces)
        meters = metrics.Metrics()
        registry = handlers.registry(config, meters)

        @kopf.on.startup(registry=registry)
        def quick(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.watching.reconnect_backoff = 0.2
            settings.posting.level = 0  # every Event, so tests can read them from the emulator

        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            kopf.operator(
                registry=registry,
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,
                ready_flag=ready,
                stop_flag=stop,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), 20)
            yield meters
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    return run
