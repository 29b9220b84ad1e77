"""The Redis Cache and Bus, shared by every replica: `redis.asyncio` with a key prefix.

`cache.from_settings` returns a `RedisCache` when a Redis host is configured. Every key and
channel is prefixed (`tessera:` by default; tests use one per run), so Tessera can share a Redis
database. Single-use and counting operations are one server-side step each: `add` is SET NX,
`pop` is GETDEL, `incr` is a Lua script (INCRBY, then PEXPIRE when the key has no TTL), so they stay
atomic across replicas; this works on Redis 6.2 and later.

Connection errors and timeouts become `cache.CacheUnavailable`. A command that fails on a broken
connection is retried a few times by redis-py; the retries fail safe (a retried `add` may answer
False, a retried `incr` may count twice, a retried `pop` may miss the value, never hand it out
twice). A subscription holds its own connection and polls it, so that `close()` ends its
iteration within `POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.asyncio
import redis.asyncio.client
import redis.asyncio.retry
import redis.backoff
import redis.exceptions

from tessera.core import cache

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
POLL_INTERVAL = 1.0
RETRIES = 2

# KEYS[1] counter, ARGV[1] TTL in ms, ARGV[2] the amount.
# PTTL -1: the key exists without a TTL (first increment).
_INCR_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""


class RedisCache:
    """A `cache.Cache` in a Redis database, every key and channel starting with `prefix`."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int,
        password: str,
        prefix: str,
        *,
        username: str = "",
        tls: bool = False,
        tls_reqs: str = "none",
        tls_ca_cert: str = "",
    ) -> None:
        self.prefix = prefix
        self._closed = False
        self._client = redis.asyncio.Redis(
            host=host,
            port=port,
            db=db,
            username=username or None,
            password=password or None,
            # authentik's TLS_REQS names are ssl's: none, optional, required (certificate check).
            ssl=tls,
            ssl_cert_reqs=tls_reqs,
            ssl_ca_certs=tls_ca_cert or None,
            ssl_check_hostname=tls and tls_reqs == "required",
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            retry=redis.asyncio.retry.Retry(
                redis.backoff.ExponentialWithJitterBackoff(cap=0.5, base=0.05), RETRIES
            ),
            decode_responses=True,
        )
        self._incr = self._client.register_script(_INCR_SCRIPT)

    async def get(self, key: str) -> Any | None:
        with _unavailable():
            text = await self._client.get(self.prefix + key)
        return None if text is None else cache.decode(text)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        cache.check_ttl(ttl)
        text = cache.encode(value)
        with _unavailable():
            await self._client.set(self.prefix + key, text, px=_px(ttl))

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        cache.check_ttl(ttl)
        text = cache.encode(value)
        with _unavailable():
            stored = await self._client.set(self.prefix + key, text, px=_px(ttl), nx=True)
        return bool(stored)

    async def delete(self, key: str) -> None:
        with _unavailable():
            await self._client.delete(self.prefix + key)

    async def pop(self, key: str) -> Any | None:
        with _unavailable():
            text = await self._client.getdel(self.prefix + key)
        return None if text is None else cache.decode(text)

    async def incr(self, key: str, ttl: float, by: int = 1) -> int:
        cache.check_ttl(ttl)
        with _unavailable():
            count = await self._incr(keys=[self.prefix + key], args=[_milliseconds(ttl), by])
        return int(count)

    async def publish(self, channel: str, message: cache.Message) -> None:
        text = cache.encode(message)
        with _unavailable():
            await self._client.publish(self.prefix + channel, text)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[cache.Message]]:
        pubsub = self._client.pubsub()
        try:
            with _unavailable():
                await pubsub.subscribe(self.prefix + channel)
                # Wait for the server's confirmation: from then on, every publication reaches us.
                confirmation = await pubsub.get_message(timeout=COMMAND_TIMEOUT)
            if confirmation is None or confirmation["type"] != "subscribe":
                raise cache.CacheUnavailable(f"redis did not confirm the subscription: {channel}")
            yield _Messages(self, pubsub)
        finally:
            await pubsub.aclose()

    async def ping(self) -> None:
        with _unavailable():
            await self._client.ping()

    async def close(self) -> None:
        self._closed = True
        await self._client.aclose()

    def is_closed(self) -> bool:
        """True once `close()` was called (a method: the answer changes across awaits)."""
        return self._closed


class _Messages:
    """Iterates over one subscription's messages until the cache closes."""

    def __init__(self, owner: RedisCache, pubsub: redis.asyncio.client.PubSub) -> None:
        self._owner = owner
        self._pubsub = pubsub

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> cache.Message:
        while not self._owner.is_closed():
            try:
                with _unavailable():
                    received = await self._pubsub.get_message(timeout=POLL_INTERVAL)
            except cache.CacheUnavailable:
                if self._owner.is_closed():
                    break
                raise
            if received is not None and received["type"] == "message":
                message: cache.Message = cache.decode(received["data"])
                return message
        raise StopAsyncIteration


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Turn the ways of not reaching Redis into `cache.CacheUnavailable`."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise cache.CacheUnavailable(f"redis: {exc}") from exc


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _px(ttl: float | None) -> int | None:
    return None if ttl is None else _milliseconds(ttl)
