"""Scheduled maintenance: expired tokens, sessions, OAuth2 grants and SAML sessions removed, old
events, delivered or failed mail of the outbox and old rows of the directory's change journal
deleted. The mail outbox's drainer is `mail`.

Each kind is deleted in short batches, one transaction each, with a pause between them, so that a
large backlog never holds the database (on SQLite, the event loop) for more than a few ms.

`tessera worker` runs the scheduler; a server runs it too unless told not to. Each run first takes
the store lease `maintenance`, so that among all workers and servers one does each run; the holder
keeps renewing while it lives, and another takes over when its lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog

from tessera.core import config, events, store
from tessera.core.identity import journal, oauth2_grants, saml_sessions, sessions, tokens
from tessera.core.mail import outbox
from tessera.core.store import crud
from tessera.core.tasks import mail as mail  # the package hands it on

log = structlog.get_logger(__name__)
LEASE = "maintenance"


def holder_id(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# How long one batch may hold the database, and the bounds of its size in rows. On SQLite a
# statement runs on the event loop's thread and holds the process's writer lock: one unbounded
# DELETE of a large backlog stalled every request for its whole duration (seconds,
# bench/expiry_sweep.py). Batches are sized to take about TARGET seconds (the size doubles while
# they take less than half of it, halves when they take more), and the sweep then rests at least
# as long as the batch took, so requests get at least half of the loop while it runs.
TARGET = 0.002
MIN_BATCH, FIRST_BATCH, MAX_BATCH = 10, 100, 5000
PAUSE = 0.001

Remove = Callable[[store.Tx, int], Awaitable[int]]
SWEEPS: dict[str, Remove] = {
    "tokens": tokens.remove_expired,
    "sessions": sessions.remove_expired,
    "events": events.remove_expired,
    "oauth2": oauth2_grants.remove_expired,
    "saml": saml_sessions.remove_expired,
    "mail": outbox.remove_done,
    "directory_changes": journal.remove_old,
}


async def run_maintenance(db: store.Store) -> dict[str, int]:
    """One maintenance pass; returns how many rows each step removed."""
    return {name: await sweep(db, remove) for name, remove in SWEEPS.items()}


async def sweep(db: store.Store, remove: Remove) -> int:
    """Call `remove` in short transactions, batch by batch, until the last one was not full."""
    removed, size = 0, FIRST_BATCH
    while True:
        started = time.perf_counter()
        async with db.transaction() as tx:
            count = await remove(tx, size)
        took = time.perf_counter() - started
        removed += count
        if count < size:
            return removed
        if took < TARGET / 2:
            size = min(size * 2, MAX_BATCH)
        elif took > TARGET:
            size = max(size // 2, MIN_BATCH)
        await asyncio.sleep(max(PAUSE, took))


async def take_lease(db: store.Store, holder: str, ttl: dt.timedelta) -> bool:
    async with db.transaction() as tx:
        return await crud.take_lease(tx, LEASE, holder, dt.datetime.now(dt.UTC), ttl)


async def tick(db: store.Store, holder: str, interval: float) -> dict[str, int] | None:
    """Run maintenance if this process holds the lease; None when another holder has it.

    The lease is renewed every half interval while the run lasts (a large backlog takes longer
    than an interval in short batches), so that no other process starts the same run meanwhile.
    """
    ttl = dt.timedelta(seconds=interval * 1.5)
    if not await take_lease(db, holder, ttl):
        return None
    renewer = asyncio.create_task(_renew(db, holder, ttl, interval / 2))
    try:
        removed = await run_maintenance(db)
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    # A pass that removed nothing is not news (every start runs one).
    (log.info if any(removed.values()) else log.debug)("maintenance done", holder=holder, **removed)
    return removed


async def _renew(db: store.Store, holder: str, ttl: dt.timedelta, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await take_lease(db, holder, ttl)
        except store.StoreUnavailable as exc:
            log.warning("maintenance lease not renewed", reason=str(exc))


async def scheduler(db: store.Store, settings: config.Settings, role: str) -> None:
    """Run `tick` every interval until cancelled; store outages are logged and retried."""
    holder = holder_id(role)
    interval = settings.worker.interval_seconds
    while True:
        try:
            await tick(db, holder, interval)
        except store.StoreUnavailable as exc:
            log.warning("maintenance skipped: store unavailable", reason=str(exc))
        except Exception:  # the loop is an edge: one failed run must not end all later runs
            log.exception("maintenance failed", holder=holder)
        await asyncio.sleep(interval)
