"""What only the PostgreSQL Cache and Bus has: the UNLOGGED table and its sweep, messages larger
than a NOTIFY payload, nothing lost while the listener stays connected, and reconnection after the
listening connection is lost. The protocol itself is checked by `test_cache_conformance.py`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pgcachekit
import pytest

from tessera.core import cache as cache_api
from tessera.core import config
from tessera.core.store import pgbus, pgcache


async def next_message(messages: AsyncIterator[cache_api.Message]) -> cache_api.Message:
    return await asyncio.wait_for(anext(messages), timeout=5)


async def test_the_table_is_unlogged_with_an_expiry_index(
    pg_cache_settings: config.Settings,
) -> None:
    conn = await pgcachekit.admin_connection(pg_cache_settings)
    try:
        persistence = await conn.fetchval(
            "SELECT relpersistence::text FROM pg_class WHERE relname = 'cache_entries'"
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cache_entries_expires'"
        )
    finally:
        await conn.close()
    assert persistence == "u"
    assert "(expires)" in index


async def test_sweep_deletes_expired_rows_only(
    make_pg_cache: pgcachekit.MakeCache, pg_cache_settings: config.Settings
) -> None:
    backend = make_pg_cache()
    for i in range(25):
        await backend.set(f"gone{i}", i, 0.05)
    await backend.set("kept", 1, 30)
    await backend.set("forever", 2, None)
    await asyncio.sleep(0.1)
    assert await backend.sweep() >= 25
    conn = await pgcachekit.admin_connection(pg_cache_settings)
    try:
        keys = await conn.fetch(
            "SELECT key FROM cache_entries WHERE starts_with(key, $1) ORDER BY key", backend.prefix
        )
    finally:
        await conn.close()
    assert [r["key"] for r in keys] == [backend.prefix + "forever", backend.prefix + "kept"]


async def test_prefixes_keep_caches_apart(make_pg_cache: pgcachekit.MakeCache) -> None:
    one, other = make_pg_cache(prefix=pgcachekit.new_prefix()), make_pg_cache()
    await one.set("k", "one", None)
    assert await other.get("k") is None
    async with other.subscribe("c") as messages:
        await one.publish("c", {"from": "one"})
        await other.publish("c", {"from": "other"})
        assert await next_message(messages) == {"from": "other"}


async def test_a_message_larger_than_a_notify_payload_arrives_in_order(
    make_pg_cache: pgcachekit.MakeCache,
) -> None:
    publisher, receiver = make_pg_cache(), make_pg_cache()
    large = {"blob": "é" * 20_000}  # 40 kB of UTF-8: five times PostgreSQL's payload limit
    async with receiver.subscribe("c") as messages:
        await publisher.publish("c", {"n": 1})
        await publisher.publish("c", large)
        await publisher.publish("c", {"n": 3})
        assert await next_message(messages) == {"n": 1}
        assert await next_message(messages) == large
        assert await next_message(messages) == {"n": 3}


async def test_a_connected_listener_loses_nothing_from_concurrent_replicas(
    make_pg_cache: pgcachekit.MakeCache,
) -> None:
    receiver = make_pg_cache()
    publishers = [make_pg_cache() for _ in range(3)]
    count = 400

    async def send(index: int, publisher: pgcache.PostgresCache) -> None:
        for n in range(count):
            body = {"p": index, "n": n}
            if n % 50 == 0:
                body["pad"] = "x" * 9000  # some travel through the table
            await publisher.publish("c", body)

    async with receiver.subscribe("c") as messages:
        await asyncio.gather(*(send(i, p) for i, p in enumerate(publishers)))
        received = [await next_message(messages) for _ in range(count * len(publishers))]
    for index in range(len(publishers)):
        # Each publisher's messages arrive all, and in the order it published them.
        assert [m["n"] for m in received if m["p"] == index] == list(range(count))


async def test_a_lost_listening_connection_ends_subscriptions_and_resubscribing_works(
    make_pg_cache: pgcachekit.MakeCache, pg_cache_settings: config.Settings
) -> None:
    publisher, receiver = make_pg_cache(), make_pg_cache()
    async with receiver.subscribe("c") as messages:
        await publisher.publish("c", {"n": 1})
        assert await next_message(messages) == {"n": 1}
        await _terminate_listeners(pg_cache_settings)
        with pytest.raises(cache_api.CacheUnavailable):
            await next_message(messages)
    async with receiver.subscribe("c") as messages:  # connects again
        await publisher.publish("c", {"n": 2})
        assert await next_message(messages) == {"n": 2}


async def _terminate_listeners(settings: config.Settings) -> None:
    conn = await pgcachekit.admin_connection(settings)
    try:
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2",
            settings.postgresql.name,
            pgcache.LISTENER_NAME,
        )
    finally:
        await conn.close()
    assert ended == 1


async def test_a_subscriber_that_falls_behind_is_told_not_silently_skipped(
    make_pg_cache: pgcachekit.MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgbus, "QUEUE_SIZE", 5)
    backend = make_pg_cache()
    async with backend.subscribe("c") as slow, backend.subscribe("c") as fast:
        for n in range(8):
            await backend.publish("c", {"n": n})
            assert await next_message(fast) == {"n": n}
        received = []
        with pytest.raises(cache_api.CacheUnavailable, match="fell behind"):
            while True:
                received.append(await next_message(slow))
        assert received == [{"n": n} for n in range(5)]


async def test_a_foreign_notification_on_the_channel_is_ignored(
    make_pg_cache: pgcachekit.MakeCache, pg_cache_settings: config.Settings
) -> None:
    backend = make_pg_cache()
    conn = await pgcachekit.admin_connection(pg_cache_settings)
    try:
        async with backend.subscribe("c") as messages:
            await conn.execute("SELECT pg_notify($1, 'not ours')", backend.pg_channel)
            await conn.execute("SELECT pg_notify($1, 'm99:c')", backend.pg_channel)
            await conn.execute("SELECT pg_notify($1, 'm1:c{not json')", backend.pg_channel)
            await backend.publish("c", {"n": 1})
            assert await next_message(messages) == {"n": 1}
    finally:
        await conn.close()


async def test_unreachable_postgresql_raises_cache_unavailable(
    pg_cache_settings: config.Settings,
) -> None:
    settings = pg_cache_settings.postgresql.model_copy(update={"port": 1, "connect_timeout": 1})
    backend = pgcache.PostgresCache(settings)
    try:
        with pytest.raises(cache_api.CacheUnavailable):
            await backend.ping()
        with pytest.raises(cache_api.CacheUnavailable):
            await backend.get("k")
        with pytest.raises(cache_api.CacheUnavailable):
            async with backend.subscribe("c"):
                pass
    finally:
        await backend.close()


async def test_a_non_integer_counter_is_a_value_error(make_pg_cache: pgcachekit.MakeCache) -> None:
    backend = make_pg_cache()
    await backend.set("word", "seven", 10)
    await backend.set("fraction", 1.5, 10)
    for key in ("word", "fraction"):
        with pytest.raises(ValueError, match="not an integer counter"):
            await backend.incr(key, 10)
    assert await backend.get("word") == "seven"
