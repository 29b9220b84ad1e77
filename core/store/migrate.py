"""Schema migrations with Alembic, run at start under a lock so that replicas can start together.

PostgreSQL: a transaction-scoped advisory lock serialises migrators, and the DDL runs in that
transaction, so a killed migrator leaves nothing half-applied. SQLite: an exclusive file lock next
to the database file does the same between processes of one machine.
"""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from tessera.core import config

_LOCK_KEY = 0x7E55E8A  # pg_advisory_xact_lock key shared by every Tessera migrator
_HERE = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    return cfg


def head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: sa.Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, settings: config.Settings) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            await conn.run_sync(_upgrade)
        return
    lock_path = Path(str(settings.sqlite_path) + ".migrate-lock")
    await asyncio.to_thread(_flock_and_wait, lock_path, engine)


def _flock_and_wait(lock_path: Path, engine: AsyncEngine) -> None:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            sync_engine = sa.create_engine(engine.url.set(drivername="sqlite"))
            try:
                with sync_engine.begin() as conn:
                    _upgrade(conn)
            finally:
                sync_engine.dispose()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        result: Any = await conn.run_sync(current)
        return result  # type: ignore[no-any-return]
