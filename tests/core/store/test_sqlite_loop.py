"""The embedded SQLite store runs on the event loop: another process's write lock must make a
writer wait without stalling the loop, and concurrent transactions must not exhaust the pool."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from tessera.core import config, store
from tessera.core.store import crud, sqlite


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _user(name: str) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "username": name,
        "username_folded": name,
        "attributes": {},
        "date_joined": dt.datetime.now(dt.UTC),
    }


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """Another writer (as a separate process would be): BEGIN IMMEDIATE, wait, commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def test_a_foreign_write_lock_delays_the_writer_but_not_the_loop(
    db: store.Store, settings: config.Settings
) -> None:
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(settings.sqlite_path, 0.4, held))
    holder.start()
    await asyncio.to_thread(held.wait, 5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    async with db.transaction() as tx:
        await crud.insert(tx, "users", _user("patient"))
    waited = time.monotonic() - started
    ticker.cancel()
    holder.join()
    assert waited >= 0.3  # it did wait for the other writer
    # The loop kept running meanwhile: about one tick per 10 ms, never one long stall.
    assert ticks >= waited / 0.01 / 3
    async with db.read() as tx:
        assert await crud.exists(tx, "users", username="patient")


async def test_a_writer_gives_up_when_the_lock_never_comes(
    db: store.Store, settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "WRITE_LOCK_TIMEOUT", 0.2)
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(settings.sqlite_path, 0.8, held))
    holder.start()
    await asyncio.to_thread(held.wait, 5)
    with pytest.raises(store.StoreUnavailable):
        async with db.transaction() as tx:
            await crud.insert(tx, "users", _user("impatient"))
    holder.join()
    async with db.transaction() as tx:  # the connection is usable again afterwards
        await crud.insert(tx, "users", _user("later"))


async def test_more_open_transactions_than_connections_queue_instead_of_blocking(
    db: store.Store,
) -> None:
    async def reader(index: int) -> int:
        async with db.read() as tx:
            await asyncio.sleep(0.02)  # holds its connection across an await
            return len(await crud.all_rows(tx, "users"))

    async def writer(index: int) -> None:
        async with db.transaction() as tx:
            await crud.insert(tx, "users", _user(f"w{index}"))
            await asyncio.sleep(0.005)

    jobs = [reader(i) for i in range(sqlite.POOL_SIZE * 3)]
    jobs += [writer(i) for i in range(sqlite.POOL_SIZE * 2)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=10)
    async with db.read() as tx:
        assert len(await crud.all_rows(tx, "users")) == sqlite.POOL_SIZE * 2


async def test_checkpoints_run_in_a_worker_thread_every_so_many_writes(
    db: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY", 5)
    pool = db._sqlite
    assert pool is not None
    before = pool.checkpoints
    for index in range(5):
        async with db.transaction() as tx:
            await crud.insert(tx, "users", _user(f"c{index}"))
    assert pool._checkpointing is not None  # started by the fifth commit, not run inside it
    await pool._checkpointing
    assert pool.checkpoints == before + 1 and pool.checkpoint_failures == 0
    # The loop's own connections never checkpoint inside a commit.
    async with pool.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
