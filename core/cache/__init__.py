"""The Cache and Bus: ephemeral state shared between replicas, and publish/subscribe fan-out.

Sessions, flow state, rate-limit counters and cached policy results live here; so do the
"config changed" and "session ended" broadcasts. `Cache` is the contract; `from_settings` picks
the backend: `memory.MemoryCache` (embedded default, one replica) when no Redis host is configured,
else `redis.RedisCache`. The app factory builds it from the settings' plain values (this package
does not import `tessera.core.config`) and owns it through its cleanup context; the layers above
(`identity`, `events`, `flows`, `policies`, ...) receive it and call the methods below.

Values are JSON: what goes in must be JSON-encodable (else `TypeError`, before anything is
written) and comes out as its JSON round trip (tuples become lists, keys become strings). Both
backends pass the conformance suite in `tests/core/cache/test_cache_conformance.py`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any, Protocol

from tessera.core import errors

__all__ = ["Cache", "CacheUnavailable", "Message", "decode", "encode", "from_settings"]

Message = dict[str, Any]


class CacheUnavailable(errors.TesseraError):
    """The cache backend cannot be reached (connection refused, timed out, auth failed)."""


class Cache(Protocol):
    """Key/value store with TTLs, atomic single-use operations, and a message bus.

    `ttl` is in seconds (fractions allowed); `None` means no expiry. Every operation on one key is
    atomic with respect to every other caller, in this process and in other replicas.
    """

    async def get(self, key: str) -> Any | None:
        """The decoded value, or None when absent or expired."""

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        """Store `value`, replacing any previous value and TTL."""

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        """Store `value` only if `key` is absent; True if this call stored it."""

    async def delete(self, key: str) -> None:
        """Remove `key`; no error when absent."""

    async def pop(self, key: str) -> Any | None:
        """Get and delete in one step: of concurrent callers, at most one receives the value."""

    async def incr(self, key: str, ttl: float, by: int = 1) -> int:
        """Add `by` (one, or a negative number to take back) to the counter at `key` (absent
        counts as 0) and return the new value.

        The TTL is set when the key has none (its first increment) and is not extended after, so
        a counter counts within a fixed window.
        """

    async def publish(self, channel: str, message: Message) -> None:
        """Send `message` to every current subscriber of `channel`, in every replica."""

    def subscribe(
        self, channel: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Message]]:
        """Subscribe to `channel` for the duration of an `async with` block.

        The block receives an async iterator over the messages, in publication order.
        The subscription is active when the block is entered, so a message published after that
        is received: `async with cache.subscribe("c") as messages: async for m in messages: ...`.
        Iteration ends when the cache is closed.
        """

    async def ping(self) -> None:
        """Return when the backend answers; raise `CacheUnavailable` otherwise."""

    async def close(self) -> None:
        """Release connections and end open subscriptions."""


def encode(value: Any) -> str:
    """Compact JSON text of `value`; `TypeError` when it is not JSON-encodable."""
    return json.dumps(value, separators=(",", ":"))


def decode(text: str | bytes) -> Any:
    return json.loads(text)


def check_ttl(ttl: float | None) -> None:
    """Reject TTLs that would silently mean "forever" or "already gone"."""
    if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")


def from_settings(
    redis_host: str,
    redis_port: int,
    redis_db: int,
    redis_password: str,
    prefix: str,
    *,
    username: str = "",
    tls: bool = False,
    tls_reqs: str = "none",
    tls_ca_cert: str = "",
) -> Cache:
    """`MemoryCache` when `redis_host` is empty, else a `RedisCache` with every key prefixed
    (over TLS when `tls`: authentik's `AUTHENTIK_REDIS__TLS`, `TLS_REQS`, `TLS_CA_CERT`)."""
    # Imported here: the backends import this module for the helpers above (and the Redis
    # client, some 6 MiB, only when it is configured).
    if not redis_host:
        from tessera.core.cache import memory

        return memory.MemoryCache()
    from tessera.core.cache import redis

    return redis.RedisCache(
        host=redis_host,
        port=redis_port,
        db=redis_db,
        password=redis_password,
        prefix=prefix,
        username=username,
        tls=tls,
        tls_reqs=tls_reqs,
        tls_ca_cert=tls_ca_cert,
    )
