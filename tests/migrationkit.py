"""Helpers of the migration tests: move a database to a revision, run a function in one
transaction on either engine, and settings for a store of its own on the test's backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers import PG_HOST, PG_USER

from tessera.core import config, store
from tessera.core.store import migrate, tables


def to(connection: sa.Connection, revision: str) -> None:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def back(connection: sa.Connection, revision: str) -> None:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def run(db: store.Store, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(connection, *args)` in one transaction on either engine (SQLite's is synchronous).

    SQLite: on a connection of its own without the store's pragmas, foreign keys off, as
    `store.migrate` runs migrations (a table rebuilt by a migration must not cascade)."""
    engine = db.engine
    if isinstance(engine, sa.Engine):
        plain = sa.create_engine(engine.url)
        try:
            with plain.begin() as connection:
                return fn(connection, *args)
        finally:
            plain.dispose()
    async with engine.begin() as conn:
        return await conn.run_sync(fn, *args)


def settings_on(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> config.Settings:
    """A store of the test's own (PostgreSQL: a fresh database), left unmigrated."""
    if backend == "sqlite":
        return config.load(data_dir=tmp_path, secret_key="k" * 40)
    name = request.getfixturevalue("fresh_database")
    return config.load(
        data_dir=tmp_path,
        secret_key="k" * 40,
        postgresql={"host": PG_HOST, "user": PG_USER, "name": name},
    )


def differences(connection: sa.Connection, names: tuple[str, ...]) -> list[Any]:
    """What autogenerate would change in the tables `names` to match `store.tables`."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    out = []
    for diff in compare_metadata(context, tables.metadata):
        for item in diff if isinstance(diff, list) else [diff]:
            if any(name in repr(item) for name in names):
                out.append(item)
    return out


def has_tables(connection: sa.Connection, names: tuple[str, ...]) -> set[str]:
    return set(sa.inspect(connection).get_table_names()) & set(names)


async def new_tables(
    settings: config.Settings,
    previous: str,
    revision: str,
    names: tuple[str, ...],
    exercise: Callable[[store.Store], Awaitable[Any]],
) -> dict[str, Any]:
    """A migration that adds the tables `names`, up, down and up again: which of them exist
    before (`before`), what autogenerate finds different from `store.tables` (`differences`),
    what `exercise(db)` returns at `revision` (`after`), which exist after the downgrade (`gone`)
    and after the second upgrade (`again`)."""
    db = store.Store(settings)
    await db.open()
    try:
        await run(db, to, previous)
        before = await run(db, has_tables, names)
        await run(db, to, revision)
        found = await run(db, differences, names)
        after = await exercise(db)
        await run(db, back, previous)
        gone = await run(db, has_tables, names)
        await run(db, to, revision)
        again = await run(db, has_tables, names)
    finally:
        await db.close()
    return {"before": before, "differences": found, "after": after, "gone": gone, "again": again}
