"""Helpers of the migration tests: move a database to a revision, run a function in one
transaction on either engine, and settings for a store of its own on the test's backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from helpers import PG_HOST, PG_USER

from tessera.core import config, store
from tessera.core.store import migrate


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
