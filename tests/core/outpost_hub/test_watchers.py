"""In-process watchers of the hub (the core's embedded outpost): told every TRIGGER_UPDATE and
SESSION_END the connected outposts are, from this process's commits and from another process's
hub through the bus; no longer told once they stop watching."""

from __future__ import annotations

import asyncio
import hashlib

from tessera.core import store
from tessera.core.cache import memory
from tessera.core.identity import sessions
from tessera.core.outpost_hub import hub


class Recorder:
    def __init__(self) -> None:
        self.updates = 0
        self.ended: list[str] = []
        self.heard = asyncio.Event()

    def outposts_changed(self) -> None:
        self.updates += 1
        self.heard.set()

    def sessions_ended(self, digests: list[str]) -> None:
        self.ended.extend(digests)
        self.heard.set()

    def resubscribed(self) -> None:
        raise AssertionError("the bus was not lost")


async def _heard(recorder: Recorder) -> None:
    async with asyncio.timeout(1.0):
        await recorder.heard.wait()
    recorder.heard.clear()


async def test_watchers_hear_this_process_and_the_others(db: store.Store) -> None:
    bus = memory.MemoryCache()
    digest = hashlib.sha256(b"a session key").hexdigest()
    async with hub.running(db, bus) as here, hub.running(db, bus) as there:
        await asyncio.wait_for(there.listening.wait(), 1.0)
        mine, theirs = Recorder(), Recorder()
        stop_mine = here.watch(mine)
        there.watch(theirs)

        here.on_commit(frozenset({"outpost_providers"}), {})
        await _heard(mine)
        await _heard(theirs)  # through the bus
        assert (mine.updates, theirs.updates) == (1, 1)

        here.on_commit(frozenset({"sessions"}), {sessions.ENDED: {digest}})
        await _heard(mine)
        await _heard(theirs)
        assert mine.ended == theirs.ended == [digest]

        here.on_commit(frozenset({"users"}), {})  # not what outposts read
        stop_mine()
        here.on_commit(frozenset({"applications"}), {})
        await _heard(theirs)
        assert (mine.updates, theirs.updates) == (1, 2)
