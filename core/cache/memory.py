"""The in-process Cache and Bus: the embedded default, for a single replica.

`cache.from_settings` returns a `MemoryCache` when no Redis host is configured; tests use it
directly. Values are stored as their JSON text, so callers get copies and see the same round trip
as with Redis. Nothing here awaits between reading and writing an entry, so every operation is
atomic on the event loop.

Memory is bounded: entries expire lazily (checked when read), and when `max_entries` is reached
the expired entries are swept, then the oldest writes are evicted until a tenth of the room is
free, so that the sweep costs O(1) per write on average. Each subscriber has a bounded queue; a
subscriber that falls `queue_size` messages behind loses its oldest messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from tessera.core import cache

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_QUEUE_SIZE = 1_000


class MemoryCache:
    """A `cache.Cache` held in this process's memory."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        if max_entries < 1 or queue_size < 1:
            raise ValueError("max_entries and queue_size must be at least 1")
        self._max_entries = max_entries
        self._queue_size = queue_size
        # key -> (JSON text, monotonic expiry or None); insertion order is write order.
        self._entries: dict[str, tuple[str, float | None]] = {}
        self._queues: dict[str, set[asyncio.Queue[str | None]]] = {}

    def __len__(self) -> int:
        """Entries held, counting expired ones not yet swept."""
        return len(self._entries)

    async def get(self, key: str) -> Any | None:
        text = self._live(key)
        return None if text is None else cache.decode(text)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        cache.check_ttl(ttl)
        self._store(key, cache.encode(value), ttl)

    async def add(self, key: str, value: Any, ttl: float | None) -> bool:
        cache.check_ttl(ttl)
        text = cache.encode(value)
        if self._live(key) is not None:
            return False
        self._store(key, text, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def pop(self, key: str) -> Any | None:
        text = self._live(key)
        if text is None:
            return None
        del self._entries[key]
        return cache.decode(text)

    async def incr(self, key: str, ttl: float, by: int = 1) -> int:
        cache.check_ttl(ttl)
        text = self._live(key)
        if text is None:
            self._store(key, str(by), ttl)
            return by
        value = cache.decode(text)
        if type(value) is not int:
            raise ValueError(f"value at {key!r} is not an integer counter")
        expires = self._entries[key][1]
        # Updated in place: a counter keeps its position in write order and its window.
        self._entries[key] = (
            str(value + by),
            time.monotonic() + ttl if expires is None else expires,
        )
        return value + by

    async def publish(self, channel: str, message: cache.Message) -> None:
        text = cache.encode(message)
        for queue in self._queues.get(channel, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(text)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[cache.Message]]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(self._queue_size)
        self._queues.setdefault(channel, set()).add(queue)
        try:
            yield _Messages(queue)
        finally:
            queues = self._queues.get(channel, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(channel, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        """Drop every entry and end every subscription's iteration."""
        self._entries.clear()
        for queues in self._queues.values():
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)
        self._queues.clear()

    def _live(self, key: str) -> str | None:
        """The JSON text at `key`, deleting it first if it has expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        text, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._entries[key]
            return None
        return text

    def _store(self, key: str, text: str, ttl: float | None) -> None:
        expires = None if ttl is None else time.monotonic() + ttl
        if self._entries.pop(key, None) is None:
            self._make_room()
        self._entries[key] = (text, expires)

    def _make_room(self) -> None:
        """Before adding a key: when full, sweep expired entries, then evict the oldest."""
        if len(self._entries) < self._max_entries:
            return
        now = time.monotonic()
        expired = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]
        for key in expired:
            del self._entries[key]
        target = self._max_entries - max(1, self._max_entries // 10)
        while len(self._entries) > target:
            del self._entries[next(iter(self._entries))]


class _Messages:
    """Iterates over one subscription's queue until the cache closes."""

    def __init__(self, queue: asyncio.Queue[str | None]) -> None:
        self._queue = queue

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> cache.Message:
        text = await self._queue.get()
        if text is None:
            self._queue.put_nowait(None)  # stays ended for later calls
            raise StopAsyncIteration
        message: cache.Message = cache.decode(text)
        return message
