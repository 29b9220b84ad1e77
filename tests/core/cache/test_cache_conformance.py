"""The Cache and Bus conformance suite, run on every backend: in-process memory, Redis and
PostgreSQL.

The Redis backend runs against the real server (`TESSERA_TEST_REDIS_HOST`, default 127.0.0.1)
under a key prefix of its own, whose keys are deleted afterwards. The PostgreSQL backend runs in
the run's database (migrated here), under a key prefix of its own, whose rows are deleted
afterwards. An unreachable Redis or PostgreSQL fails these tests; they are never skipped.
Tests of what only one backend has (PostgreSQL's large messages and reconnection) are in
`test_pgcache.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pgcachekit
import pytest
import redis.asyncio
from helpers import REDIS_HOST

from tessera.core import cache as cache_api
from tessera.core import config
from tessera.core.cache import memory
from tessera.core.cache import redis as redis_cache
from tessera.core.store import pgcache

REDIS_PORT = 6379
CONCURRENCY = 50


@pytest.fixture(params=["memory", "redis", "postgresql"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_cache_settings")  # set up here, outside the event loop
    return str(request.param)


@pytest.fixture
async def cache(
    backend_kind: str, request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[cache_api.Cache]:
    """A fresh cache on each backend; Redis and PostgreSQL must answer, and their keys go
    afterwards."""
    if backend_kind == "memory":
        backend: cache_api.Cache = memory.MemoryCache()
        yield backend
        await backend.close()
        return
    if backend_kind == "postgresql":
        settings: config.Settings = request.getfixturevalue("pg_cache_settings")
        pg_backend = pgcache.PostgresCache(settings.postgresql, prefix=pgcachekit.new_prefix())
        await pg_backend.ping()  # CacheUnavailable here fails the test: PostgreSQL is required
        try:
            yield pg_backend
        finally:
            await pg_backend.close()
            await pgcachekit.delete_prefixed(settings, {pg_backend.prefix})
        return
    backend = cache_api.from_settings(REDIS_HOST, REDIS_PORT, 0, "", redis_prefix)
    assert isinstance(backend, redis_cache.RedisCache)
    await backend.ping()  # CacheUnavailable here fails the test: Redis is required
    try:
        yield backend
    finally:
        await backend.close()
        await _delete_prefixed(redis_prefix)


async def _delete_prefixed(prefix: str) -> None:
    raw = redis.asyncio.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = [key async for key in raw.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await raw.delete(*keys)
    finally:
        await raw.aclose()


async def next_message(messages: AsyncIterator[cache_api.Message]) -> cache_api.Message:
    return await asyncio.wait_for(anext(messages), timeout=3)


async def test_get_set_delete(cache: cache_api.Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", "v1", None)
    assert await cache.get("k") == "v1"
    await cache.set("k", "v2", None)
    assert await cache.get("k") == "v2"
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.delete("k")  # absent: no error


async def test_ttl_expiry(cache: cache_api.Cache) -> None:
    await cache.set("short", 1, 0.2)
    await cache.set("long", 2, 30)
    await cache.set("forever", 3, None)
    assert await cache.get("short") == 1
    await asyncio.sleep(0.4)
    assert await cache.get("short") is None
    assert await cache.pop("short") is None
    assert await cache.get("long") == 2
    assert await cache.get("forever") == 3


async def test_set_replaces_ttl(cache: cache_api.Cache) -> None:
    await cache.set("k", "a", 0.2)
    await cache.set("k", "b", None)
    await asyncio.sleep(0.4)
    assert await cache.get("k") == "b"


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
async def test_invalid_ttl_is_rejected(cache: cache_api.Cache, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", "v", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await cache.incr("n", ttl)
    assert await cache.get("k") is None


async def test_add_only_when_absent(cache: cache_api.Cache) -> None:
    assert await cache.add("k", "first", 0.2) is True
    assert await cache.add("k", "second", 0.2) is False
    assert await cache.get("k") == "first"
    await asyncio.sleep(0.4)
    assert await cache.add("k", "third", None) is True
    assert await cache.get("k") == "third"


async def test_add_concurrent_race_has_one_winner(cache: cache_api.Cache) -> None:
    results = await asyncio.gather(*(cache.add("lock", i, 10) for i in range(CONCURRENCY)))
    assert results.count(True) == 1
    assert await cache.get("lock") == results.index(True)


async def test_pop_concurrent_replay_gets_value_once(cache: cache_api.Cache) -> None:
    await cache.set("code", {"user": 7}, 10)
    results = await asyncio.gather(*(cache.pop("code") for _ in range(CONCURRENCY)))
    assert [r for r in results if r is not None] == [{"user": 7}]
    assert await cache.get("code") is None
    assert await cache.pop("code") is None


async def test_incr_concurrent_counts_every_call(cache: cache_api.Cache) -> None:
    results = await asyncio.gather(*(cache.incr("hits", 10) for _ in range(CONCURRENCY)))
    assert sorted(results) == list(range(1, CONCURRENCY + 1))
    assert await cache.get("hits") == CONCURRENCY


async def test_incr_by_takes_back_within_the_window(cache: cache_api.Cache) -> None:
    assert await cache.incr("held", 10) == 1
    assert await cache.incr("held", 10, by=3) == 4
    assert await cache.incr("held", 10, by=-4) == 0
    assert await cache.incr("fresh", 10, by=-1) == -1


async def test_incr_ttl_starts_at_first_increment(cache: cache_api.Cache) -> None:
    assert await cache.incr("window", 0.4) == 1
    await asyncio.sleep(0.25)
    assert await cache.incr("window", 0.4) == 2  # does not extend the window
    await asyncio.sleep(0.25)
    assert await cache.get("window") is None
    assert await cache.incr("window", 0.4) == 1


async def test_publish_reaches_every_subscriber(cache: cache_api.Cache) -> None:
    async with cache.subscribe("events") as first, cache.subscribe("events") as second:
        await cache.publish("events", {"n": 1})
        await cache.publish("events", {"n": 2})
        for messages in (first, second):
            assert await next_message(messages) == {"n": 1}
            assert await next_message(messages) == {"n": 2}


async def test_subscribers_receive_only_their_channel(cache: cache_api.Cache) -> None:
    async with cache.subscribe("a") as messages:
        await cache.publish("b", {"to": "b"})
        await cache.publish("a", {"to": "a"})
        assert await next_message(messages) == {"to": "a"}
    await cache.publish("a", {"after": "unsubscribe"})  # no subscriber left: no error


async def test_close_ends_subscriptions(cache: cache_api.Cache) -> None:
    async with cache.subscribe("events") as messages:

        async def drain() -> list[cache_api.Message]:
            return [message async for message in messages]

        reader = asyncio.create_task(drain())
        await asyncio.sleep(0.1)
        await cache.close()
        assert await asyncio.wait_for(reader, timeout=3) == []


async def test_json_round_trip(cache: cache_api.Cache) -> None:
    value: Any = {"s": "ü€", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, [2, {"x": []}]]}
    await cache.set("k", value, None)
    assert await cache.get("k") == value
    await cache.set("t", (1, 2), None)
    assert await cache.get("t") == [1, 2]
    async with cache.subscribe("c") as messages:
        await cache.publish("c", value)
        assert await next_message(messages) == value


async def test_stored_value_is_a_copy(cache: cache_api.Cache) -> None:
    value = {"roles": ["user"]}
    await cache.set("k", value, None)
    value["roles"].append("admin")
    assert await cache.get("k") == {"roles": ["user"]}


async def test_non_json_value_raises_type_error(cache: cache_api.Cache) -> None:
    with pytest.raises(TypeError):
        await cache.set("k", object(), None)
    with pytest.raises(TypeError):
        await cache.add("k", {"when": {1, 2}}, None)
    with pytest.raises(TypeError):
        await cache.publish("c", {"obj": object()})
    assert await cache.get("k") is None


async def test_ping(cache: cache_api.Cache) -> None:
    await cache.ping()


def test_from_settings_picks_memory_without_redis_host() -> None:
    assert isinstance(cache_api.from_settings("", 6379, 0, "", "p:"), memory.MemoryCache)


async def test_memory_bound_evicts_expired_then_oldest() -> None:
    backend = memory.MemoryCache(max_entries=3)
    await backend.set("expiring", 0, 0.1)
    await backend.set("b", 1, None)
    await backend.set("c", 2, None)
    await asyncio.sleep(0.2)
    await backend.set("d", 3, None)  # full: the expired entry makes room
    assert [await backend.get(k) for k in ("b", "c", "d")] == [1, 2, 3]
    await backend.set("e", 4, None)  # full, nothing expired: the oldest write goes
    assert await backend.get("b") is None
    assert [await backend.get(k) for k in ("c", "d", "e")] == [2, 3, 4]


async def test_memory_bound_holds_under_many_keys() -> None:
    backend = memory.MemoryCache(max_entries=100)
    for i in range(1_000):
        await backend.set(f"k{i}", i, None)
        await backend.incr(f"n{i}", 60)
    assert len(backend) <= 100
    assert await backend.get("n999") == 1


async def test_redis_prefixes_keys_and_channels(redis_prefix: str) -> None:
    backend = redis_cache.RedisCache(REDIS_HOST, REDIS_PORT, 0, "", redis_prefix)
    raw = redis.asyncio.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    try:
        await backend.set("k", {"v": 1}, 10)
        assert await raw.get(redis_prefix + "k") == '{"v":1}'
        assert await raw.get("k") is None
        async with backend.subscribe("c") as messages:
            assert await raw.publish(redis_prefix + "c", '{"raw":true}') == 1
            assert await next_message(messages) == {"raw": True}
    finally:
        await backend.close()
        await raw.aclose()
        await _delete_prefixed(redis_prefix)


async def test_redis_unreachable_raises_cache_unavailable() -> None:
    backend = redis_cache.RedisCache("127.0.0.1", 1, 0, "", "tessera-test-unreachable:")
    try:
        with pytest.raises(cache_api.CacheUnavailable):
            await backend.ping()
        with pytest.raises(cache_api.CacheUnavailable):
            await backend.get("k")
    finally:
        await backend.close()
