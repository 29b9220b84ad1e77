"""Helpers of the PostgreSQL Cache tests: the run's database migrated for the cache table, and
caches on it under key prefixes of their own whose rows are deleted afterwards."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from helpers import PG_HOST, PG_USER

from tessera.core import config, store
from tessera.core.store import pgcache

MakeCache = Callable[..., pgcache.PostgresCache]


@pytest.fixture(scope="session")
def pg_cache_settings(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> config.Settings:
    """Settings on the run's PostgreSQL database, migrated (so `cache_entries` exists)."""
    settings = config.load(
        data_dir=tmp_path_factory.mktemp("pgcache"),
        secret_key="k" * 40,
        postgresql={"host": PG_HOST, "user": PG_USER, "name": pg_database},
    )

    async def migrate() -> None:
        db = store.Store(settings)
        await db.open()
        try:
            await db.migrate()
        finally:
            await db.close()

    # Its own thread: the fixture may first be asked for from inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return settings


async def admin_connection(settings: config.Settings) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        host=PG_HOST, user=PG_USER, database=settings.postgresql.name, timeout=5
    )
    return conn


async def delete_prefixed(settings: config.Settings, prefixes: set[str]) -> None:
    conn = await admin_connection(settings)
    try:
        for prefix in prefixes:
            await conn.execute("DELETE FROM cache_entries WHERE starts_with(key, $1)", prefix)
    finally:
        await conn.close()


def new_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def make_pg_cache(pg_cache_settings: config.Settings) -> AsyncIterator[MakeCache]:
    """`make_pg_cache()`: a PostgresCache on the run's database; the calls of one test share a
    key prefix (so they see each other, as replicas do) unless given `prefix=`. All are closed
    and their rows deleted afterwards."""
    shared = new_prefix()
    made: list[pgcache.PostgresCache] = []

    def make(prefix: str = shared) -> pgcache.PostgresCache:
        backend = pgcache.PostgresCache(pg_cache_settings.postgresql, prefix=prefix)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()
    await delete_prefixed(pg_cache_settings, {b.prefix for b in made})
