"""The connections of this process, and the fan-out that reaches every process's connections.

`Hub` keeps this process's open control channels by outpost. It hears every committed write
transaction (`Store.on_commit`): one that wrote a table outposts read (`OUTPOST_TABLES`:
outposts, providers, applications, key pairs, ...) sends TRIGGER_UPDATE to every connected
instance, and one that ended sessions (`identity.sessions.ENDED`) sends SESSION_END for each to
every instance. The same news goes on the bus channel `outposts` (`{"from", "kind", ...}`), so
that the hubs of the other serving processes and replicas tell their connections too; a hub
skips its own messages, which it has delivered already. When the bus subscription breaks,
messages may have been lost: every connected instance gets TRIGGER_UPDATE once it is back.
`watch` adds an in-process `Watcher` (the core's embedded outpost) that hears the same news as
the connections do, on every path: this process's commits, the bus, and its recovery.

Each connection has a bounded queue and a writer task, so a slow outpost delays nobody; one
whose queue overflows is closed (it reconnects and refetches). Owned by the app through
`outpost_hub.setup` (a cleanup context); `channel` adds and removes connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tessera.core import cache, store
from tessera.core.identity import sessions
from tessera.core.wire import outpost_channel as oc

CHANNEL = "outposts"
# Tables whose rows an outpost's configuration is made of: a committed write to one of them
# sends TRIGGER_UPDATE (its outpost, providers and their OAuth2 clients, the applications of
# those, scope mappings, key pairs).
OUTPOST_TABLES = frozenset(
    {
        "outposts",
        "outpost_providers",
        "providers",
        "proxy_providers",
        "ldap_providers",
        "oauth2_providers",
        "scope_mappings",
        "applications",
        "certificate_keypairs",
    }
)
QUEUE_SIZE = 256
SEND_TIMEOUT = 10.0
SESSIONS_PER_MESSAGE = 100
MAX_PER_OUTPOST = 256  # connections of one outpost to one process
log = structlog.get_logger(__name__)


class Connection:
    """One open control channel: its outpost, its instance, and its outgoing queue."""

    def __init__(
        self, ws: web.WebSocketResponse, outpost_pk: str, outpost_name: str, instance_uuid: str
    ) -> None:
        self.ws = ws
        self.outpost_pk = outpost_pk
        self.outpost_name = outpost_name
        self.instance_uuid = instance_uuid
        self.id = uuid.uuid4().hex
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[bool] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"outpost-writer-{self.id}")

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def send(self, frame: oc.Frame) -> None:
        """Queue `frame`; a connection that cannot keep up is closed."""
        try:
            self._queue.put_nowait(frame.to_text())
        except asyncio.QueueFull:
            log.warning("outpost_channel_overflow", outpost=self.outpost_pk, instance=self.id)
            if self._closing is None:
                self._closing = asyncio.get_running_loop().create_task(
                    self.ws.close(code=oc.CLOSE_POLICY)
                )

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                log.info("outpost_channel_send_failed", outpost=self.outpost_pk, error=repr(exc))
                await self.ws.close(code=oc.CLOSE_GOING_AWAY)
                return


class Watcher(Protocol):
    """An outpost inside this process: told what a connected instance would be sent."""

    def outposts_changed(self) -> None: ...

    def sessions_ended(self, digests: list[str]) -> None: ...

    def resubscribed(self) -> None:
        """The bus subscription was lost and is back: news may have been missed meanwhile."""


class Hub:
    """This process's control channels, and their fan-out through the bus."""

    def __init__(self, db: store.Store, bus: cache.Cache) -> None:
        self.db = db
        self.bus = bus
        self.me = uuid.uuid4().hex
        self.connections: dict[str, set[Connection]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._stop_listening: Any = None
        self.listening = asyncio.Event()  # set while subscribed to the bus
        self.watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Tell `watcher` every TRIGGER_UPDATE and SESSION_END; returns the way to stop."""
        self.watchers.append(watcher)
        return lambda: self.watchers.remove(watcher) if watcher in self.watchers else None

    # -- connections ---------------------------------------------------------------------

    def has_room(self, outpost_pk: str) -> bool:
        return len(self.connections.get(outpost_pk, ())) < MAX_PER_OUTPOST

    def add(self, conn: Connection) -> None:
        self.connections.setdefault(conn.outpost_pk, set()).add(conn)
        conn.start()

    async def remove(self, conn: Connection) -> None:
        group = self.connections.get(conn.outpost_pk)
        if group is not None:
            group.discard(conn)
            if not group:
                del self.connections[conn.outpost_pk]
        await conn.stop()

    def all(self) -> Iterator[Connection]:
        for group in list(self.connections.values()):
            yield from list(group)

    async def close_all(self) -> None:
        """Close every connection (shutdown: the outposts reconnect to another replica)."""
        await asyncio.gather(
            *(c.ws.close(code=oc.CLOSE_GOING_AWAY) for c in self.all()), return_exceptions=True
        )

    # -- delivery to this process's connections -----------------------------------------

    def trigger_update(self, outposts: set[str] | None = None) -> int:
        """TRIGGER_UPDATE to the connected instances of `outposts` (None: of every outpost)."""
        for watcher in self.watchers:
            watcher.outposts_changed()
        frame = oc.make(oc.Instruction.TRIGGER_UPDATE)
        sent = 0
        for conn in self.all():
            if outposts is None or conn.outpost_pk in outposts:
                conn.send(frame)
                sent += 1
        return sent

    def session_end(self, digests: list[str]) -> None:
        """SESSION_END for each session digest to every connected instance."""
        frames = []
        for digest in digests:
            try:
                frames.append(oc.session_end(digest))
            except ValueError:
                log.warning("outpost_session_end_skipped", reason="not a sha256 hex digest")
        for watcher in self.watchers:
            watcher.sessions_ended(digests)
        for conn in self.all():
            for frame in frames:
                conn.send(frame)

    # -- news from this process's commits -------------------------------------------------

    def on_commit(self, tables: frozenset[str], announced: dict[str, set[str]]) -> None:
        """Store commit listener: deliver here at once, and publish for the other processes."""
        if tables & OUTPOST_TABLES:
            self.trigger_update()
            self._publish({"kind": "update"})
        ended = sorted(announced.get(sessions.ENDED, ()))
        if ended:
            self.session_end(ended)
            for start in range(0, len(ended), SESSIONS_PER_MESSAGE):
                chunk = ended[start : start + SESSIONS_PER_MESSAGE]
                self._publish({"kind": "session_end", "sessions": chunk})

    def _publish(self, message: cache.Message) -> None:
        task = asyncio.get_running_loop().create_task(self._send({"from": self.me, **message}))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, message: cache.Message) -> None:
        try:
            await self.bus.publish(CHANNEL, message)
        except cache.CacheUnavailable:
            log.warning("outpost_fanout_unavailable", kind=message.get("kind"))

    # -- news from the other processes ---------------------------------------------------

    def receive(self, message: cache.Message) -> None:
        """Deliver a message of another process's hub to this process's connections."""
        if message.get("from") == self.me:
            return
        kind = message.get("kind")
        if kind == "update":
            self.trigger_update()
        elif kind == "session_end":
            digests = message.get("sessions")
            if isinstance(digests, list):
                self.session_end([d for d in digests[:SESSIONS_PER_MESSAGE] if isinstance(d, str)])

    async def _listen(self) -> None:
        missed = False
        while True:
            try:
                async with self.bus.subscribe(CHANNEL) as messages:
                    self.listening.set()
                    if missed:
                        for watcher in self.watchers:
                            watcher.resubscribed()
                        self.trigger_update()  # what was published meanwhile is lost
                    async for message in messages:
                        self.receive(message)
                return  # the cache was closed
            except cache.CacheUnavailable:
                self.listening.clear()
                missed = True
                log.warning("outpost_fanout_resubscribing")
                await asyncio.sleep(1.0)

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._stop_listening = self.db.on_commit(self.on_commit)
        self._listener = asyncio.create_task(self._listen(), name="outpost-hub-bus")

    async def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        await self.close_all()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await asyncio.gather(*self._pending, return_exceptions=True)


class ConnectedCollector(Collector):
    """`tessera_outpost_instances_connected{outpost}`: this process's open control channels."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "tessera_outpost_instances_connected",
            "Outpost instances connected to this process's control channel, by outpost",
            labels=["outpost", "outpost_name"],
        )
        for outpost_pk, group in sorted(self.hub.connections.items()):
            name = next(iter(group)).outpost_name if group else ""
            gauge.add_metric([outpost_pk, name], len(group))
        yield gauge


@contextlib.asynccontextmanager
async def running(db: store.Store, bus: cache.Cache) -> AsyncIterator[Hub]:
    hub = Hub(db, bus)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
