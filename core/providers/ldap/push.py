"""Tell connected LDAP outposts that their directory changed (PROVIDER_SPECIFIC frames).

Every change of a user, group, membership, password or search grant is in the journal
(`directory_changes`, written by the store's triggers whatever wrote the row). The `Pusher` of
each serving process wakes shortly after one of its own commits wrote such a table, and every
`POLL` seconds otherwise (a commit of another process or replica, or of the worker), while one
of its control channels belongs to an outpost holding LDAP providers; a change of an LDAP
provider's settings by this process wakes it too. It reads what the journal names since the
generation it last announced and sends each such connected outpost a
PROVIDER_SPECIFIC frame whose args are `wire.ldap.DirectoryChanged`: its LDAP providers, the new
generation, and the users whose cached binds must go (the changed users, and the members of
changed groups and of their descendants). Changes close together go out as one frame
(`DEBOUNCE`). Each process tells only its own connections, so no frame is sent twice.

A session ending needs nothing here: the hub sends SESSION_END for every ended session,
those LDAP binds opened included. Provider settings also reach the outposts as TRIGGER_UPDATE
(`ldap_providers` is one of the hub's `OUTPOST_TABLES`); the DirectoryChanged that follows
them (no users named) tells an outpost in cached mode to rebuild its DIT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Protocol

import structlog

from tessera.core import cache, store, wire
from tessera.core.identity import groups, outposts
from tessera.core.providers.ldap import directory, records
from tessera.core.store import crud
from tessera.core.wire import outpost_channel as oc

PROVIDERS = "ldap_providers"  # a change of settings changes the DIT (numbers, base DN)
DIRECTORY_TABLES = frozenset(
    {"users", "groups", "group_members", "group_parents", "ldap_search_grants"}
)
DEBOUNCE = 0.1
POLL = 2.0
USERS_PER_FRAME = 1000
log = structlog.get_logger(__name__)


class Connection(Protocol):
    """An open control channel (`outpost_hub.hub.Connection`, which this layer does not
    import: the app hands the hub in)."""

    outpost_pk: str

    def send(self, frame: oc.Frame) -> None: ...


class Channels(Protocol):
    def all(self) -> Iterable[Connection]: ...


class Pusher:
    def __init__(self, db: store.Store, hub: Callable[[], Channels | None]) -> None:
        self.db = db
        self.hub = hub
        self.announced: int | None = None  # the generation last told (None: not read yet)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop_listening: Callable[[], None] | None = None
        self.sent = 0  # frames sent, for the tests and the log
        self._providers_changed = False  # a provider's settings changed (this process's commit)

    def on_commit(self, tables: frozenset[str], announced: dict[str, set[str]]) -> None:
        if PROVIDERS in tables:
            self._providers_changed = True
        if tables & DIRECTORY_TABLES or PROVIDERS in tables:
            self._wake.set()

    async def start(self) -> None:
        async with self.db.read() as tx:
            self.announced = await directory.generation(tx)
        self._stop_listening = self.db.on_commit(self.on_commit)
        self._task = asyncio.create_task(self._loop(), name="ldap-directory-push")

    async def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
            # arrives as the event is set, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self._wake.wait()
            woken = self._wake.is_set()
            await asyncio.sleep(DEBOUNCE)
            self._wake.clear()
            try:
                await self.push(woken)
            except (store.StoreUnavailable, cache.CacheUnavailable) as exc:
                log.warning("ldap_directory_push_failed", error=str(exc))

    def _connections(self) -> list[Connection]:
        found = self.hub()
        return list(found.all()) if found is not None else []

    async def push(self, woken: bool = True) -> int:
        """Announce what changed since the last announcement to the connected outposts holding
        LDAP providers; how many frames went out. With nobody connected, a commit of this
        process (`woken`) only moves the mark: an outpost that connects later reads its
        directory anyway, and the periodic poll costs nothing then."""
        connections = self._connections()
        if not connections:
            if woken:
                async with self.db.read() as tx:
                    self.announced = await directory.generation(tx)
            return 0
        providers_changed, self._providers_changed = self._providers_changed, False
        async with self.db.read() as tx:
            now = await directory.generation(tx)
            if self.announced is None:
                self.announced = now
            moved = now > self.announced
            if not moved and not providers_changed:
                return 0
            held = await _ldap_providers_of(tx, sorted({c.outpost_pk for c in connections}))
            changed = await directory.changed_since(tx, self.announced, now) if moved else None
            affected = await _affected_users(tx, changed) if changed is not None else []
        self.announced = now
        sent = 0
        for conn in connections:
            providers = held.get(conn.outpost_pk)
            if not providers:
                continue
            for frame in _frames(providers, now, affected):
                conn.send(frame)
                sent += 1
        self.sent += sent
        return sent


def _frames(providers: list[int], now: int, affected: list[int]) -> list[oc.Frame]:
    chunks = [affected[i : i + USERS_PER_FRAME] for i in range(0, len(affected), USERS_PER_FRAME)]
    out = []
    for chunk in chunks or [[]]:
        args = wire.ldap.DirectoryChanged(providers=providers, generation=now, users=chunk)
        out.append(oc.make(oc.Instruction.PROVIDER_SPECIFIC, **args.model_dump(mode="json")))
    return out


async def _ldap_providers_of(tx: store.Tx, outpost_pks: list[str]) -> dict[str, list[int]]:
    linked = await outposts.providers_of(tx, outpost_pks)
    pks = sorted({pk for found in linked.values() for pk in found})
    ldap = {r["pk"] for r in await crud.find_many(tx, records.TABLE, "pk", pks)} if pks else set()
    return {o: [pk for pk in found if pk in ldap] for o, found in linked.items()}


async def _affected_users(tx: store.Tx, changed: tuple[set[int], set[str]]) -> list[int]:
    """The changed users, and the members of the changed groups and of their descendants."""
    user_pks, group_pks = changed
    if group_pks:
        tree = await groups.Tree.load(tx)
        below = directory.descendants(tree, group_pks)
        found = await crud.users_of_groups(tx, sorted(below))
        user_pks = user_pks | {pk for members in found.values() for pk in members}
    return sorted(user_pks)


__all__ = ["DIRECTORY_TABLES", "Pusher"]
