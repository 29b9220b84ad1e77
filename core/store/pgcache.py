"""The PostgreSQL Cache and Bus: a `cache.Cache` in the Store's database, for deployments without
Redis (authentik itself keeps its cache and channels in PostgreSQL since 2025.10).

The app factory picks it when PostgreSQL is configured and Redis is not. It lives in `store`
because only `store` speaks SQL; it fulfils the protocol and conformance suite of `cache`, which
sits below `store` for this reason (ARCHITECTURE.md).

Entries are rows of `cache_entries` (key, JSON text, expiry), an UNLOGGED table made by migration
0007: ephemeral by contract, so no write-ahead log; a database crash empties it as a Redis restart
would. Every operation is one statement on the server's clock, so it is atomic across replicas:
`add` and `incr` are `INSERT ... ON CONFLICT DO UPDATE` (an expired row counts as absent), `pop`
is `DELETE ... RETURNING`. Expired rows are invisible at once and deleted in small batches every
`SWEEP_INTERVAL` seconds by each process (`SKIP LOCKED`: concurrent sweepers share the work).

The Bus is `NOTIFY` on one PostgreSQL channel per key prefix, published from the pool and received
by `pgbus.Listener` on one `LISTEN` connection; a message too large for a NOTIFY payload is stored
as a row (`BUS_MESSAGE_TTL`) in the same statement that notifies its key.

It uses asyncpg directly with a pool of its own (`POOL_SIZE` connections, plus the listener):
a session lookup is one prepared statement, with none of SQLAlchemy's machinery in between.
Connection failures and timeouts become `cache.CacheUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import structlog

from tessera.core import cache, config
from tessera.core.store import pgbus, tls

log = structlog.get_logger(__name__)

POOL_SIZE = 4
# What pg_stat_activity shows as the application of the pool's and the listener's connections.
POOL_NAME = "tessera-cache"
LISTENER_NAME = "tessera-bus"
COMMAND_TIMEOUT = 5.0
SWEEP_INTERVAL = 60.0
SWEEP_BATCH = 1000
BUS_MESSAGE_TTL = 60.0
# NOTIFY refuses payloads of 8000 bytes or more; larger messages travel through the table.
NOTIFY_LIMIT = 7900

# The expiry of $3 seconds from now; NULL when $3 is NULL (no expiry). Plain literals, no
# formatting: every value travels as a bound parameter.
_GET = "SELECT value FROM cache_entries WHERE key = $1 AND (expires IS NULL OR expires > now())"
_SET = """INSERT INTO cache_entries (key, value, expires)
VALUES ($1, $2, now() + make_interval(secs => $3::float8))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires"""
_ADD = """INSERT INTO cache_entries AS e (key, value, expires)
VALUES ($1, $2, now() + make_interval(secs => $3::float8))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires
WHERE e.expires IS NOT NULL AND e.expires <= now() RETURNING true"""
_DELETE = "DELETE FROM cache_entries WHERE key = $1"
_POP = """DELETE FROM cache_entries WHERE key = $1
RETURNING value, expires IS NULL OR expires > now() AS live"""
# An expired counter starts again; the TTL is set when the row has none (first increment).
_INCR = """INSERT INTO cache_entries AS e (key, value, expires)
VALUES ($1, $2::bigint::text, now() + make_interval(secs => $3::float8))
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN e.expires <= now() THEN EXCLUDED.value
          ELSE (e.value::bigint + $2::bigint)::text END,
  expires = CASE WHEN e.expires IS NULL OR e.expires <= now() THEN EXCLUDED.expires
            ELSE e.expires END
RETURNING value::bigint"""
_NOTIFY = "SELECT pg_notify($1, $2)"
# A large message: stored for BUS_MESSAGE_TTL seconds ($5) and its key notified, in one statement.
_NOTIFY_STORED = """WITH stored AS (INSERT INTO cache_entries (key, value, expires)
VALUES ($3, $4, now() + make_interval(secs => $5::float8)))
SELECT pg_notify($1, $2)"""
_FETCH = "SELECT value FROM cache_entries WHERE key = $1"
_SWEEP = """DELETE FROM cache_entries WHERE ctid = ANY(ARRAY(
SELECT ctid FROM cache_entries WHERE expires <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))"""


class PostgresCache:
    """A `cache.Cache` in the `cache_entries` table, every key starting with `prefix`."""

    def __init__(self, settings: config.PostgreSQL, prefix: str = "") -> None:
        self.prefix = prefix
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:16]
        self.pg_channel = f"tessera_bus_{digest}"
        self._listener = pgbus.Listener(self.pg_channel, self._connect, self._fetch_stored)

    async def get(self, key: str) -> Any | None:
        text = await self._run("fetchval", _GET, self.prefix + key)
        return None if text is None else cache.decode(text)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        cache.check_ttl(ttl)
        await self._run("execute", _SET, self.prefix + key, cache.encode(value), _seconds(ttl))

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        cache.check_ttl(ttl)
        text = cache.encode(value)
        return bool(await self._run("fetchval", _ADD, self.prefix + key, text, _seconds(ttl)))

    async def delete(self, key: str) -> None:
        await self._run("execute", _DELETE, self.prefix + key)

    async def pop(self, key: str) -> Any | None:
        row = await self._run("fetchrow", _POP, self.prefix + key)
        return None if row is None or not row["live"] else cache.decode(row["value"])

    async def incr(self, key: str, ttl: float, by: int = 1) -> int:
        cache.check_ttl(ttl)
        try:
            count = await self._run("fetchval", _INCR, self.prefix + key, by, float(ttl))
        except (asyncpg.DataError, asyncpg.exceptions.NumericValueOutOfRangeError) as exc:
            raise ValueError(f"value at {key!r} is not an integer counter") from exc
        return int(count)

    async def publish(self, channel: str, message: cache.Message) -> None:
        text = cache.encode(message)
        payload = pgbus.encode_payload(channel, "m", text)
        if len(payload.encode()) <= NOTIFY_LIMIT:
            await self._run("execute", _NOTIFY, self.pg_channel, payload)
            return
        key = f"{self.prefix}bus-message:{uuid.uuid4().hex}"
        reference = pgbus.encode_payload(channel, "r", key)
        await self._run(
            "execute", _NOTIFY_STORED, self.pg_channel, reference, key, text, BUS_MESSAGE_TTL
        )

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[cache.Message]]:
        async with self._listener.subscribe(channel) as subscription:
            yield subscription

    async def ping(self) -> None:
        await self._run("fetchval", "SELECT 1")

    async def close(self) -> None:
        """End every subscription, stop sweeping, close the connections."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._listener.close()
        if self._pool is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.wait_for(self._pool.close(), timeout=5)
            self._pool.terminate()

    async def sweep(self) -> int:
        """Delete expired rows, a batch at a time; returns how many went."""
        removed = 0
        while True:
            status = await self._run("execute", _SWEEP, SWEEP_BATCH)
            count = int(status.rsplit(" ", 1)[-1])
            removed += count
            if count < SWEEP_BATCH:
                return removed

    async def _run(self, method: str, query: str, *args: Any) -> Any:
        pool = await self._open()
        with _unavailable():
            async with pool.acquire() as conn:
                return await getattr(conn, method)(query, *args)

    async def _open(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise cache.CacheUnavailable("postgresql cache: closed")
        async with self._pool_lock:
            if self._pool is None:
                with _unavailable():
                    self._pool = await asyncpg.create_pool(
                        min_size=1, max_size=POOL_SIZE, **self._connect_args(POOL_NAME)
                    )
                self._sweeper = asyncio.create_task(self._sweep_forever())
        return self._pool

    async def _connect(self) -> asyncpg.Connection:
        if self._closed:
            raise cache.CacheUnavailable("postgresql cache: closed")
        with _unavailable():
            conn: asyncpg.Connection = await asyncpg.connect(**self._connect_args(LISTENER_NAME))
        return conn

    def _connect_args(self, application_name: str) -> dict[str, Any]:
        pg = self._settings
        return {
            "host": pg.host,
            "port": pg.port,
            "user": pg.user,
            "password": pg.password.get_secret_value() or None,
            "database": pg.name,
            "timeout": pg.connect_timeout,
            "command_timeout": COMMAND_TIMEOUT,
            "server_settings": {"application_name": application_name},
            "ssl": tls.ssl_argument(pg),
        }

    async def _fetch_stored(self, key: str) -> str | None:
        """A large message's text; any failure is CacheUnavailable (the listener ends the
        subscriptions that miss it instead of dying)."""
        try:
            text: str | None = await self._run("fetchval", _FETCH, key)
        except asyncpg.PostgresError as exc:
            raise cache.CacheUnavailable(f"postgresql cache: {type(exc).__name__}") from exc
        return text

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep()
            except cache.CacheUnavailable as exc:
                log.warning("cache sweep skipped", reason=str(exc))


def _seconds(ttl: float | None) -> float | None:
    return None if ttl is None else float(ttl)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Turn the ways of not reaching PostgreSQL into `cache.CacheUnavailable`."""
    try:
        yield
    except (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        asyncpg.exceptions.InvalidPasswordError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.UndefinedTableError,  # migrations not run yet
    ) as exc:
        raise cache.CacheUnavailable(f"postgresql cache: {type(exc).__name__}: {exc}") from exc
