"""Schema migrations with Alembic, run at start under a lock so that replicas can start together.

PostgreSQL: a transaction-scoped advisory lock serialises migrators, and the DDL runs in that
transaction, so a killed migrator leaves nothing half-applied. SQLite: an exclusive file lock next
to the database file does the same between processes of one machine.
"""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

from tessera.core import config

_LOCK_KEY = 0x7E55E8A  # pg_advisory_xact_lock key shared by every Tessera migrator
_HERE = Path(__file__).parent / "migrations"
# The newest revision; a test checks it against Alembic's head. When the database is already
# there, start-up skips importing Alembic (a tenth of a second and some memory).
HEAD = "0017"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    return cfg


def head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: sa.Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    from alembic import command

    command.upgrade(cfg, "head")


def current(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


async def upgrade(engine: sa.Engine | AsyncEngine, settings: config.Settings) -> None:
    if await current_revision(engine) == HEAD:
        return  # up to date (a newer head would differ, so this never skips real work)
    if isinstance(engine, sa.Engine):  # SQLite
        lock_path = Path(str(settings.sqlite_path) + ".migrate-lock")
        await asyncio.to_thread(_flock_and_wait, lock_path, engine)
        return
    async with engine.begin() as conn:  # PostgreSQL
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        await conn.run_sync(_upgrade)


def _flock_and_wait(lock_path: Path, engine: sa.Engine) -> None:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            # Its own engine: this runs in a worker thread, and the store's connections belong
            # to the event loop's thread.
            sync_engine = sa.create_engine(engine.url)
            try:
                with sync_engine.begin() as conn:
                    _upgrade(conn)
            finally:
                sync_engine.dispose()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def current_revision(engine: sa.Engine | AsyncEngine) -> str | None:
    if isinstance(engine, sa.Engine):
        with engine.connect() as sync:
            return current(sync)
    async with engine.connect() as conn:
        result: Any = await conn.run_sync(current)
        return result  # type: ignore[no-any-return]
