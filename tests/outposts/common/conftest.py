"""Fixtures of the outpost runtime's tests: a bootstrapped core on SQLite, and a proxy outpost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY
from outpostkit import Core, Deployed

from tessera.core import config, flows, identity, store
from tessera.core.crypto import Keyring


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def bootstrapped(db: store.Store) -> store.Store:
    async with db.transaction() as tx:
        await identity.bootstrap.run(
            tx,
            Keyring(SECRET_KEY),
            password=BOOTSTRAP_PASSWORD,
            token=BOOTSTRAP_TOKEN,
            email="root@example.com",
        )
        await flows.defaults.ensure(tx)
    return db


@pytest.fixture
async def core(settings: config.Settings, bootstrapped: store.Store) -> AsyncIterator[Core]:
    running = Core(settings, bootstrapped)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def deployed(core: Core, tmp_path: Path) -> Deployed:
    name = f"app-{uuid.uuid4().hex[:6]}"
    provider = await core.proxy_provider(name)
    outpost, key = await core.outpost(f"outpost-{name}", [provider["pk"]])
    return Deployed(outpost, provider, key, tmp_path / "state")
