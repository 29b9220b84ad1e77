"""Scheduled maintenance: expired tokens, sessions and OAuth2 grants removed, old events deleted.

`tessera worker` runs the scheduler; a server runs it too unless told not to. Each run first takes
the store lease `maintenance`, so that among all workers and servers one does each run; the holder
keeps renewing while it lives, and another takes over when its lease lapses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid

import structlog

from tessera.core import config, events, store
from tessera.core.identity import oauth2_grants, sessions, tokens
from tessera.core.store import crud

log = structlog.get_logger(__name__)
LEASE = "maintenance"


def holder_id(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_maintenance(db: store.Store) -> dict[str, int]:
    """One maintenance pass; returns how many rows each step removed."""
    removed = {}
    async with db.transaction() as tx:
        removed["tokens"] = await tokens.remove_expired(tx)
    async with db.transaction() as tx:
        removed["sessions"] = await sessions.remove_expired(tx)
    async with db.transaction() as tx:
        removed["events"] = await events.remove_expired(tx)
    async with db.transaction() as tx:
        removed["oauth2"] = await oauth2_grants.remove_expired(tx)
    return removed


async def take_lease(db: store.Store, holder: str, ttl: dt.timedelta) -> bool:
    async with db.transaction() as tx:
        return await crud.take_lease(tx, LEASE, holder, dt.datetime.now(dt.UTC), ttl)


async def tick(db: store.Store, holder: str, interval: float) -> dict[str, int] | None:
    """Run maintenance if this process holds the lease; None when another holder has it."""
    if not await take_lease(db, holder, dt.timedelta(seconds=interval * 1.5)):
        return None
    removed = await run_maintenance(db)
    log.info("maintenance done", holder=holder, **removed)
    return removed


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
