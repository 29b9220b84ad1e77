"""Fixtures for the whole suite: real PostgreSQL and Redis, fresh per run, cleaned up afterwards.

`backend` runs a test on SQLite and on PostgreSQL (the database `tessera_test_<run>` is created at
the start of the run and dropped at the end; tables are emptied between tests). An unreachable
PostgreSQL or Redis fails the run: nothing is silently skipped.

Under pytest-xdist (`make pytest` runs `-n 3`) each worker is a process of its own: session fixtures
run once per worker, and `RUN_ID` (tests/helpers.py) names the worker, so every worker has its own
databases, Redis key prefix and temporary directories. Servers bind ports the kernel picks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
import sqlalchemy as sa
from helpers import PG_HOST, PG_USER, REDIS_HOST, RUN_ID, SECRET_KEY

from tessera.core import config, store
from tessera.core.store import tables

pytest_plugins = ["mailkit"]  # the `inbox` fixture: a real local SMTP server


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database="postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this run, dropped at the end."""
    name = f"tessera_test_{RUN_ID}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"tessera_e2e_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("AUTHENTIK_", "TESSERA_")) and not key.startswith("TESSERA_TEST_"):
            monkeypatch.delenv(key)


REDIS_PREFIX = f"tessera-test-{RUN_ID}-"  # every Redis key this process makes starts so


@pytest.fixture
def redis_prefix() -> str:
    return f"{REDIS_PREFIX}{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_removed() -> Iterator[None]:
    """At the end of the run (of each worker) no key under this process's prefix is left, whatever
    the servers and caches of the tests wrote there."""
    yield
    client = redis.Redis(host=REDIS_HOST, port=6379, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=REDIS_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def settings_for(
    kind: str, data_dir: Path, database: str | None = None, **extra: Any
) -> config.Settings:
    # Tests never call out to the Internet: the breach check's tests serve the range API locally.
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": SECRET_KEY,
        "outbound": {"enabled": False},
        **extra,
    }
    if kind == "postgresql":
        assert database is not None
        overrides["postgresql"] = {"host": PG_HOST, "user": PG_USER, "name": database}
    return config.load(**overrides)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., config.Settings]:
    database = request.getfixturevalue("pg_database") if backend == "postgresql" else None

    def make(**extra: Any) -> config.Settings:
        return settings_for(backend, tmp_path / "data", database, **extra)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings()


_RESTART_SEQUENCES = """SELECT setval(c.oid, 1, false) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = 'public'"""


async def _empty(db: store.Store) -> None:
    # DELETE rather than TRUNCATE: on these few rows it takes a tenth of the time.
    async with db.transaction() as tx:
        for t in reversed(tables.metadata.sorted_tables):
            await tx.conn.execute(t.delete())
        if tx.dialect == "postgresql":
            await tx.conn.execute(sa.text(_RESTART_SEQUENCES))
            # The PostgreSQL Cache's rows (flow state, throttle counters): not in the metadata.
            await tx.conn.execute(sa.text("DELETE FROM cache_entries"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, made once per run; each test's store starts as a copy
    (migrating takes about half a second, copying a millisecond)."""
    settings = settings_for("sqlite", tmp_path_factory.mktemp("template"))

    async def make() -> None:
        instance = store.Store(settings)
        await instance.open()
        await instance.migrate()
        await instance.close()

    # Its own thread: the fixture is first asked for from inside a test's running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make()).result()
    return settings.sqlite_path


@pytest.fixture
async def db(
    settings: config.Settings, request: pytest.FixtureRequest
) -> AsyncIterator[store.Store]:
    """A migrated, empty store on the test's backend."""
    if settings.embedded and not settings.sqlite_path.exists():
        template: Path = request.getfixturevalue("sqlite_template")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, settings.sqlite_path)
    instance = store.Store(settings)
    await instance.open()
    await instance.migrate()
    await _empty(instance)
    yield instance
    await instance.close()
