"""The connections of this process, and the fan-out that reaches every process's connections.

`Hub` keeps this process's open control channels by outpost. It hears every committed write
transaction (`Store.on_commit`). One that wrote a table outposts read (`OUTPOST_TABLES`:
outposts, providers, applications, key pairs, flows, ...) may have changed what some outposts
fetch, and only those are told TRIGGER_UPDATE (issue 17): the hub keeps, for each outpost with
connections here, the digest of what it fetches (`prints`: its object, its providers' configs,
its key pairs), and after such a commit reads them again (`compare`, in a task of its own,
`DEBOUNCE` after the first commit, so several commits make one reading and the commit listener
never waits) and sends TRIGGER_UPDATE to the instances of each outpost whose digest changed.
A commit that ended sessions (`identity.sessions.ENDED`) sends SESSION_END for each to every
instance. The same news goes on the bus channel `outposts` (`{"from", "kind", ...}`), so that the
hubs of the other serving processes, replicas and the worker compare and tell their connections
too; a hub skips its own messages.

The digest of an outpost is read before its first connection here is accepted (`baseline`, from
`channel`, before the websocket handshake): an instance fetches its configuration after the
handshake, so whatever it may have missed was committed after that reading and shows as a
difference at the next comparison. Where the hub cannot tell, it tells everyone, as it did before
it compared: when the bus subscription broke and is back (news may have been lost), when reading
a digest fails, and in a process that was given nothing to read them with (`reading` None).
A known limit: a change undone before the hub reads again (an edit reverted within `DEBOUNCE`
and one reading's time) leaves an instance that fetched in between on the edited state until
its next periodic refresh (`refresh_interval`).

`watch` adds an in-process `Watcher` (the core's embedded outpost) that hears the same news on
every path: this process's commits, the bus, and its recovery. Watchers are not compared: each
is told of every write to `OUTPOST_TABLES` (the embedded outpost rereads its configs from the
store, debounced, which costs what a comparison would).

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
from tessera.core.outpost_hub import prints
from tessera.core.wire import outpost_channel as oc

CHANNEL = "outposts"
# Tables whose rows an outpost's configuration is made of: a committed write to one of them
# makes the hubs compare what their outposts fetch (the outposts, their providers and those
# providers' OAuth2 clients, the applications of those, scope mappings, key pairs, and the flows
# whose slugs LDAP configs name). A table too many costs a comparison, never a frame.
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
        "flows",
    }
)
DEBOUNCE = 0.05  # seconds from the first change to the comparison: later ones join it
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

    def outposts_changed(self) -> None:
        """A write to `OUTPOST_TABLES` here or elsewhere: what outposts fetch may have changed."""

    def sessions_ended(self, digests: list[str]) -> None: ...

    def resubscribed(self) -> None:
        """The bus subscription was lost and is back: news may have been missed meanwhile."""


class Hub:
    """This process's control channels, and their fan-out through the bus."""

    def __init__(
        self, db: store.Store, bus: cache.Cache, reading: prints.Reading | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self.reading = reading  # None: no digests, every outpost is told of every change
        self.me = uuid.uuid4().hex
        self.connections: dict[str, set[Connection]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._stop_listening: Any = None
        self.listening = asyncio.Event()  # set while subscribed to the bus
        self.watchers: list[Watcher] = []
        # By outpost with connections here (or one about to connect): what it fetches.
        self.digests: dict[str, str] = {}
        self.comparisons = 0  # done so far (tests wait on it)
        self._dirty = asyncio.Event()
        self._everyone = False  # the next comparison tells every outpost
        self._comparer: asyncio.Task[None] | None = None

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Tell `watcher` of every change outposts read, and every SESSION_END; returns the way
        to stop."""
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
                self.digests.pop(conn.outpost_pk, None)
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

    # -- what each outpost fetches --------------------------------------------------------

    async def baseline(self, outpost_pk: str) -> None:
        """Read the digest of `outpost_pk` unless known: before its instance's handshake, so
        what the instance fetches afterwards is at least as new. Unknown after a failure (the
        next comparison then tells the outpost)."""
        if self.reading is None or outpost_pk in self.digests:
            return
        found = await self._read([outpost_pk])
        if isinstance(found, Exception):
            log.error("outpost_digest_failed", outposts=1, exc_info=found)
            return
        # An older reading stays: an instance that fetched after it may have missed what the
        # newer one holds (the next comparison tells it).
        self.digests.setdefault(outpost_pk, found[outpost_pk])

    async def compare(self, everyone: bool = False) -> set[str]:
        """Read the digest of every outpost connected here; TRIGGER_UPDATE to those whose digest
        changed (to all when `everyone`, and when the digests cannot be read). The outposts
        told."""
        connected = sorted(self.connections)
        self.comparisons += 1
        if not connected:
            return set()
        found = await self._read(connected) if self.reading is not None else None
        if not isinstance(found, dict):
            self.trigger_update()
            if found is not None:  # logged once everyone is told (a traceback takes a while)
                log.error("outpost_digest_failed", outposts=len(connected), exc_info=found)
            return set(connected)
        changed = {pk for pk in connected if everyone or self.digests.get(pk) != found[pk]}
        for pk in connected:
            if pk in self.connections:  # its last connection may have gone meanwhile
                self.digests[pk] = found[pk]
        self.trigger_update(changed)
        return changed

    async def _read(self, outpost_pks: list[str]) -> dict[str, str] | Exception:
        assert self.reading is not None
        try:
            return await prints.read(self.db, self.reading, outpost_pks)
        except Exception as exc:  # the fallback of targeting: whatever fails, everyone is told
            return exc

    async def _comparing(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(DEBOUNCE)
            self._dirty.clear()
            everyone, self._everyone = self._everyone, False
            await self.compare(everyone)

    def changed(self, *, everyone: bool = False) -> None:
        """What outposts fetch may have changed: watchers now, connections after comparing."""
        for watcher in self.watchers:
            watcher.outposts_changed()
        self._everyone = self._everyone or everyone
        self._dirty.set()

    # -- news from this process's commits -------------------------------------------------

    def on_commit(self, tables: frozenset[str], announced: dict[str, set[str]]) -> None:
        """Store commit listener: compare here soon, and publish for the other processes."""
        if tables & OUTPOST_TABLES:
            self.changed()
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
            self.changed()
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
                        self.changed(everyone=True)  # what was published meanwhile is lost
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
        self._comparer = asyncio.create_task(self._comparing(), name="outpost-hub-compare")
        self._listener = asyncio.create_task(self._listen(), name="outpost-hub-bus")

    async def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        await self.close_all()
        for task in (self._listener, self._comparer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
async def running(
    db: store.Store, bus: cache.Cache, reading: prints.Reading | None = None
) -> AsyncIterator[Hub]:
    hub = Hub(db, bus, reading)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
