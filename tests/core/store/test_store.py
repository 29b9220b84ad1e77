"""Store conformance: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from helpers import PG_HOST, PG_USER

from tessera.core import config, errors, store, tasks
from tessera.core.store import crud, migrate


def _user(name: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "username": name,
        "username_folded": name.casefold(),
        "attributes": {"a": [1, {"b": None}]},
        "date_joined": dt.datetime.now(dt.UTC),
    }


async def test_insert_get_update_delete_roundtrip(db: store.Store) -> None:
    async with db.transaction() as tx:
        row = await crud.insert(tx, "users", _user("alice"))
    assert isinstance(row["pk"], int)
    async with db.read() as tx:
        got = await crud.get(tx, "users", pk=row["pk"])
    assert got["attributes"] == {"a": [1, {"b": None}]}
    assert got["date_joined"].tzinfo is not None
    assert abs(got["date_joined"] - row["date_joined"]) < dt.timedelta(seconds=1)
    async with db.transaction() as tx:
        updated = await crud.update(tx, "users", {"pk": row["pk"]}, {"name": "Alice"})
        assert updated["name"] == "Alice"
        assert await crud.delete(tx, "users", pk=row["pk"]) == 1
    async with db.read() as tx:
        with pytest.raises(errors.NotFound):
            await crud.get(tx, "users", pk=row["pk"])


async def test_unique_violation_is_conflict_naming_the_column(db: store.Store) -> None:
    async with db.transaction() as tx:
        await crud.insert(tx, "users", _user("bob"))
    with pytest.raises(errors.Conflict) as info:
        async with db.transaction() as tx:
            await crud.insert(tx, "users", _user("BOB"))
    assert info.value.field == "username"


async def test_foreign_key_violation_is_not_found(db: store.Store) -> None:
    with pytest.raises(errors.NotFound):
        async with db.transaction() as tx:
            await crud.insert(
                tx, "group_members", {"group_pk": str(uuid.uuid4()), "user_pk": 12345}
            )


async def test_transaction_rolls_back_on_error(db: store.Store) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await crud.insert(tx, "users", _user("carol"))
            raise RuntimeError("boom")
    async with db.read() as tx:
        assert await crud.find(tx, "users", username="carol") is None


async def test_naive_datetimes_are_refused(db: store.Store) -> None:
    with pytest.raises(Exception, match="naive"):
        async with db.transaction() as tx:
            await crud.insert(tx, "users", {**_user("dan"), "date_joined": dt.datetime.now()})


async def test_page_filters_and_counts(db: store.Store) -> None:
    async with db.transaction() as tx:
        for i in range(7):
            await crud.insert(tx, "users", {**_user(f"u{i}"), "is_active": i % 2 == 0})
        rows, count = await crud.page(
            tx,
            "users",
            crud.Query(
                filters=[crud.Filter("is_active", "eq", True)], ordering=("-username",), limit=2
            ),
        )
    assert count == 4 and [r["username"] for r in rows] == ["u6", "u4"]


async def test_lease_has_one_holder_at_a_time(db: store.Store) -> None:
    now = dt.datetime.now(dt.UTC)
    ttl = dt.timedelta(seconds=30)
    async with db.transaction() as tx:
        assert await crud.take_lease(tx, "job", "a", now, ttl)
    async with db.transaction() as tx:
        assert not await crud.take_lease(tx, "job", "b", now, ttl)
    async with db.transaction() as tx:
        assert await crud.take_lease(tx, "job", "a", now, ttl)  # renewal
    async with db.transaction() as tx:
        assert await crud.take_lease(
            tx, "job", "b", now + ttl + dt.timedelta(seconds=1), ttl
        )  # lapsed


async def test_maintenance_runs_once_per_interval_across_holders(db: store.Store) -> None:
    results = await asyncio.gather(*(tasks.tick(db, f"holder-{i}", 60) for i in range(5)))
    assert sum(r is not None for r in results) == 1


async def test_migrations_are_at_head(db: store.Store) -> None:
    assert await migrate.current_revision(db.engine) == migrate.head()


async def test_concurrent_migrations_on_a_fresh_postgresql_database(
    fresh_database: str, tmp_path: Any
) -> None:
    settings = config.load(
        data_dir=tmp_path,
        secret_key="k" * 40,
        postgresql={"host": PG_HOST, "user": PG_USER, "name": fresh_database},
    )
    stores = [store.Store(settings) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert await migrate.current_revision(stores[0].engine) == migrate.head()
    finally:
        for s in stores:
            await s.close()


async def test_scheduler_survives_a_failing_run(
    db: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    async def failing(_db: store.Store) -> dict[str, int]:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    monkeypatch.setattr(tasks, "run_maintenance", failing)
    settings = db.settings.model_copy(
        update={"worker": db.settings.worker.model_copy(update={"interval_seconds": 0.05})}
    )
    job = asyncio.create_task(tasks.scheduler(db, settings, "test"))
    async with asyncio.timeout(10):  # a second run comes after the failed first one
        while calls < 2:
            await asyncio.sleep(0.02)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert calls >= 2


def test_head_constant_matches_the_migration_scripts() -> None:
    assert migrate.head() == migrate.HEAD
