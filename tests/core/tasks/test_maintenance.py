"""Maintenance deletes expired rows in short batches, letting other work run between them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest

from tessera.core import store, tasks
from tessera.core.identity import sessions, util
from tessera.core.store import crud

HOUR = dt.timedelta(hours=1)


async def _sessions(db: store.Store, expired: int, live: int) -> None:
    async with db.transaction() as tx:
        for ttl, count in ((-HOUR, expired), (HOUR, live)):
            for _ in range(count):
                await sessions.create(tx, 1, ttl)


async def _count(db: store.Store) -> int:
    async with db.read() as tx:
        return len(await crud.all_rows(tx, "sessions"))


async def test_delete_matching_with_a_limit_deletes_at_most_that_many_matching_rows(
    bootstrapped: store.Store,
) -> None:
    await _sessions(bootstrapped, expired=30, live=5)
    expired = [crud.Filter("expires", "lte", util.now())]
    async with bootstrapped.transaction() as tx:
        assert await crud.delete_matching(tx, "sessions", expired, limit=20) == 20
    async with bootstrapped.transaction() as tx:
        assert await crud.delete_matching(tx, "sessions", expired, limit=20) == 10
    assert await _count(bootstrapped) == 5  # the live ones


async def test_a_large_backlog_goes_in_batches_with_other_work_between_them(
    bootstrapped: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "FIRST_BATCH", 50)
    monkeypatch.setattr(tasks, "MAX_BATCH", 50)
    monkeypatch.setattr(tasks, "TARGET", 10.0)  # never shrunk, whatever the machine's load
    await _sessions(bootstrapped, expired=520, live=7)
    ticks, seen = 0, []

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def remove(tx: store.Tx, limit: int) -> int:
        seen.append((limit, ticks))
        return await sessions.remove_expired(tx, limit)

    runner = asyncio.create_task(other_work())
    try:
        assert await tasks.sweep(bootstrapped, remove) == 520
    finally:
        runner.cancel()
    assert [limit for limit, _ in seen] == [50] * 11  # ten full batches, then the rest
    ticks_seen = [t for _, t in seen]
    assert all(b > a for a, b in itertools.pairwise(ticks_seen))
    assert await _count(bootstrapped) == 7


async def test_batches_shrink_when_slow_and_grow_when_fast(
    bootstrapped: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "TARGET", 0.1)  # "fast" then leaves room for a loaded machine
    limits: list[int] = []

    async def slow_then_fast(tx: store.Tx, limit: int) -> int:
        limits.append(limit)
        if len(limits) <= 3:
            await asyncio.sleep(0.15)  # longer than TARGET
        return limit if len(limits) < 8 else 0

    assert await tasks.sweep(bootstrapped, slow_then_fast) == sum(
        limits[:-1]
    )  # the last found nothing
    first = tasks.FIRST_BATCH
    assert limits[:4] == [first, first // 2, first // 4, first // 8]
    assert limits[4:] == [first // 8 * 2, first // 8 * 4, first // 8 * 8, first // 8 * 16]


async def test_run_maintenance_reports_every_kind(bootstrapped: store.Store) -> None:
    await _sessions(bootstrapped, expired=3, live=1)
    removed = await tasks.run_maintenance(bootstrapped)
    assert removed["sessions"] == 3
    assert set(removed) == {
        "tokens",
        "sessions",
        "events",
        "oauth2",
        "saml",
        "mail",
        "directory_changes",
    }
    assert await _count(bootstrapped) == 1


async def test_the_lease_is_renewed_while_a_long_run_lasts(
    bootstrapped: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 1.0  # the lease lasts 1.5 s, renewed every 0.5 s; the run below takes 3 s

    async def long_run(db: store.Store) -> dict[str, int]:
        await asyncio.sleep(3.0)
        return {}

    monkeypatch.setattr(tasks, "run_maintenance", long_run)
    running = asyncio.create_task(tasks.tick(bootstrapped, "first", interval))
    await asyncio.sleep(2.0)  # past the first lease's end
    assert await tasks.take_lease(bootstrapped, "second", dt.timedelta(seconds=1)) is False
    assert await running == {}
    await asyncio.sleep(1.6)  # no renewal after the run: the lease lapses
    assert await tasks.take_lease(bootstrapped, "second", dt.timedelta(seconds=1)) is True
