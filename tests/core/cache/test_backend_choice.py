"""Which cache a core uses (`app.backends`): Redis whenever it is configured, else PostgreSQL's when
PostgreSQL is configured, else the in-process one of the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.core import config
from tessera.core.app import backends
from tessera.core.cache import memory
from tessera.core.cache import redis as redis_cache
from tessera.core.store import pgcache

PG = {"host": "db.example", "user": "authentik", "name": "authentik"}


@pytest.mark.parametrize(
    ("overrides", "kind", "backend"),
    [
        ({}, "memory", memory.MemoryCache),
        ({"postgresql": PG}, "postgresql", pgcache.PostgresCache),
        ({"postgresql": PG, "redis": {"host": "redis.example"}}, "redis", redis_cache.RedisCache),
        ({"redis": {"host": "redis.example"}}, "redis", redis_cache.RedisCache),
    ],
    ids=["embedded", "postgresql-only", "postgresql-and-redis", "sqlite-and-redis"],
)
async def test_the_backend_follows_the_configuration(
    tmp_path: Path, overrides: dict[str, object], kind: str, backend: type
) -> None:
    settings = config.load(data_dir=tmp_path, secret_key="k" * 40, **overrides)
    assert backends.kind(settings) == kind
    chosen = backends.open_cache(settings)  # nothing connects before the first use
    try:
        assert isinstance(chosen, backend)
    finally:
        await chosen.close()
