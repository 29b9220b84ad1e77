"""The PostgreSQL Bus's receiving side: one `LISTEN` connection per process, fanned out locally.

`pgcache.PostgresCache.subscribe` registers a `Subscription` here. Every logical channel of one
cache travels on one PostgreSQL channel (named after the key prefix), so a process holds a single
listening connection whatever the number of subscribers, and channel names of any length work.
A notification's payload is `encode_payload(channel, body)`: `m` and the message's JSON, or `r`
and the key of a row of `cache_entries` that holds a message too large for NOTIFY (PostgreSQL
refuses payloads of 8000 bytes or more).

Order and loss. asyncpg hands notifications over in the order the server sent them (commit
order); `Listener` queues them and one dispatcher task delivers them one after another, reading
the large ones from the table on the way, so every subscriber sees publication order. While the
connection stays up nothing is dropped: each subscriber's queue holds `QUEUE_SIZE` messages, and a
subscriber that falls further behind is ended with `CacheUnavailable` instead of silently losing
one. When the connection is lost (server restart, network, a terminated backend; a keep-alive
query every `KEEPALIVE` seconds finds a silent loss), notifications sent meanwhile cannot be
recovered, so every open subscription ends with `CacheUnavailable` and its owner subscribes again
(knowing that it may have missed messages); the next subscription connects anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from tessera.core import cache

log = structlog.get_logger(__name__)

QUEUE_SIZE = 10_000
KEEPALIVE = 5.0
_LOST = "lost"  # inbox marker, with a generation: that connection went away

Connect = Callable[[], Awaitable[asyncpg.Connection]]
Fetch = Callable[[str], Awaitable[str | None]]


def encode_payload(channel: str, kind: str, body: str) -> str:
    """`kind` is `m` (body is the message) or `r` (body is the key of the stored message)."""
    return f"{kind}{len(channel)}:{channel}{body}"


def decode_payload(payload: str) -> tuple[str, str, str]:
    """(channel, kind, body); ValueError when malformed."""
    kind, rest = payload[:1], payload[1:]
    length, sep, rest = rest.partition(":")
    if kind not in ("m", "r") or not sep or not length.isdigit():
        raise ValueError("not a Tessera bus payload")
    size = int(length)
    if len(rest) <= size:
        raise ValueError("not a Tessera bus payload")
    return rest[:size], kind, rest[size:]


class Subscription:
    """One subscriber's queue of message texts, and how it ended."""

    def __init__(self, channel: str, generation: int) -> None:
        self.channel = channel
        self.generation = generation  # of the connection it was made on
        self.queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue(QUEUE_SIZE + 1)

    def deliver(self, text: str) -> bool:
        """Queue `text`; False (and the subscription ended) when the subscriber fell behind."""
        if self.queue.qsize() >= QUEUE_SIZE:
            self.end(cache.CacheUnavailable(f"bus: subscriber of {self.channel!r} fell behind"))
            return False
        self.queue.put_nowait(text)
        return True

    def end(self, reason: BaseException | None) -> None:
        """No more messages: None ends iteration, an exception is raised to the subscriber."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(reason)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> cache.Message:
        while True:
            item = await self.queue.get()
            if item is None or isinstance(item, BaseException):
                self.queue.put_nowait(item)  # stays ended for later calls
                if item is None:
                    raise StopAsyncIteration
                raise item
            try:
                message: cache.Message = cache.decode(item)
            except ValueError:
                continue  # not JSON: a NOTIFY by someone else on our channel
            return message


class Listener:
    """The listening connection of one `PostgresCache`, its subscribers and its dispatcher."""

    def __init__(self, pg_channel: str, connect: Connect, fetch: Fetch) -> None:
        self._pg_channel = pg_channel
        self._connect = connect
        self._fetch = fetch
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._generation = 0  # connections made so far
        self._closed = False

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """A subscription that receives every message published after this returns."""
        await self._connected()
        subscription = Subscription(channel, self._generation)
        self._subs.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subs = self._subs.get(channel, set())
            subs.discard(subscription)
            if not subs:
                self._subs.pop(channel, None)

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.wait_for(conn.close(), timeout=2)
            if not conn.is_closed():
                conn.terminate()
        self._end_all(None)

    async def _connected(self) -> None:
        """Connect and LISTEN unless already done; CacheUnavailable when that fails."""
        if self._closed:
            raise cache.CacheUnavailable("bus: the cache is closed")
        if self._conn is not None and not self._conn.is_closed():
            return
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await self._connect()
            try:
                await conn.add_listener(self._pg_channel, self._on_notification)
            except BaseException:
                conn.terminate()
                raise
            self._generation += 1
            conn.add_termination_listener(functools.partial(self._on_termination, self._generation))
            self._conn = conn
            self._tasks = [task for task in self._tasks if not task.done()]
            if not self._tasks:
                self._tasks.append(asyncio.create_task(self._dispatch()))
            self._tasks.append(asyncio.create_task(self._keepalive(conn)))

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._inbox.put_nowait(payload)

    def _on_termination(self, generation: int, conn: Any) -> None:
        if conn is self._conn:
            self._conn = None
        if not self._closed:
            self._inbox.put_nowait((_LOST, generation))

    async def _keepalive(self, conn: asyncpg.Connection) -> None:
        """Find a silently dead connection: a query every KEEPALIVE seconds must answer."""
        while not conn.is_closed():
            await asyncio.sleep(KEEPALIVE)
            try:
                await conn.fetchval("SELECT 1", timeout=KEEPALIVE)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()  # calls _on_termination
                return

    async def _dispatch(self) -> None:
        while True:
            payload = await self._inbox.get()
            if isinstance(payload, tuple):
                log.warning("bus: the listening connection was lost; subscribers resubscribe")
                lost = cache.CacheUnavailable("bus: the listening connection was lost")
                self._end_all(lost, up_to=payload[1])
                continue
            try:
                channel, kind, body = decode_payload(payload)
            except ValueError:
                continue  # someone else's NOTIFY on our channel: not ours to deliver
            subs = self._subs.get(channel)
            if not subs:
                continue
            text = body if kind == "m" else await self._stored(channel, body)
            if text is None:
                continue
            for subscription in list(subs):
                if not subscription.deliver(text):
                    subs.discard(subscription)

    async def _stored(self, channel: str, key: str) -> str | None:
        """The text of a large message; when it cannot be read, its subscribers are ended."""
        try:
            text = await self._fetch(key)
        except cache.CacheUnavailable as exc:
            text, reason = None, exc
        else:
            reason = cache.CacheUnavailable(f"bus: a message on {channel!r} expired unread")
        if text is None:
            for subscription in self._subs.pop(channel, set()):
                subscription.end(reason)
        return text

    def _end_all(self, reason: BaseException | None, up_to: int | None = None) -> None:
        """End the subscriptions made on connections up to generation `up_to` (None: all)."""
        for channel, subs in list(self._subs.items()):
            ending = {s for s in subs if up_to is None or s.generation <= up_to}
            for subscription in ending:
                subscription.end(reason)
            subs -= ending
            if not subs:
                del self._subs[channel]
