"""Run a source's sync once, under its lease, and record how it went.

Called by the worker's schedule (`schedule`) and by `POST /api/v3/sources/ldap/<slug>/sync/`.
`run` takes the store lease `ldap-source-sync:<pk>` (renewed while the run lasts, so that one
process at a time syncs a source), marks the run started, reads the directory in a thread, writes
users, groups and memberships (`sync`, `memberships`), deletes what the source created and no
longer sees when the source says so, and writes the status: `done`, `warning` when entries were
skipped, `error` when the directory could not be read (with the reason as its first message).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Any

import structlog

from tessera.core import crypto, store, wire
from tessera.core.identity import users, util
from tessera.core.sources.ldap import client, mappings, memberships, records, sync
from tessera.core.store import crud

log = structlog.get_logger(__name__)


async def _mapper(tx: store.Tx, source: dict[str, Any], column: str) -> mappings.Mapper:
    pks = list(source[column] or [])
    rows = {r["pk"]: r for r in await crud.find_many(tx, mappings.TABLE, "pk", pks)} if pks else {}
    return mappings.Mapper([rows[p] for p in pks if p in rows], source, records.user_path(source))


async def _start(db: store.Store, keyring: crypto.Keyring, pk: str, holder: str) -> sync.Job | None:
    now = util.now()
    async with db.transaction() as tx:
        source = await crud.find(tx, records.TABLE, pk=pk)
        if source is None:
            return None
        if not await crud.take_lease(tx, records.lease_name(pk), holder, now, sync.LEASE_TTL):
            return None
        values: dict[str, Any] = {
            "running_since": now,
            "started": now,
            "finished": None,
            "status": "running",
            "counts": {},
            "messages": [],
        }
        if await crud.exists(tx, records.SYNCS, source=pk):
            await crud.update(tx, records.SYNCS, {"source": pk}, values)
        else:
            await crud.insert(tx, records.SYNCS, {**values, "source": pk})
        return sync.Job(
            source,
            await records.connection_settings(tx, keyring, source),
            await _mapper(tx, source, "user_property_mappings"),
            await _mapper(tx, source, "group_property_mappings"),
        )


async def _renew(db: store.Store, pk: str, holder: str) -> None:
    while True:
        await asyncio.sleep(sync.LEASE_TTL.total_seconds() / 3)
        with contextlib.suppress(store.StoreUnavailable):
            async with db.transaction() as tx:
                await crud.take_lease(
                    tx, records.lease_name(pk), holder, util.now(), sync.LEASE_TTL
                )


async def _delete_unseen(
    db: store.Store, job: sync.Job, linked: sync.Linked, report: sync.Report
) -> None:
    async with db.read() as tx:
        user_links = await crud.rows(
            tx, records.USERS, [crud.Filter("source", "eq", job.source["pk"])], limit=10**9
        )
        group_links = await crud.rows(
            tx, records.GROUPS, [crud.Filter("source", "eq", job.source["pk"])], limit=10**9
        )
    gone_users = [link["user_pk"] for link in user_links if link["identifier"] not in linked.users]
    gone_groups = [
        link["group_pk"] for link in group_links if link["identifier"] not in linked.groups
    ]
    for start in range(0, len(gone_users), sync.CHUNK):
        async with db.transaction() as tx:
            for pk in gone_users[start : start + sync.CHUNK]:
                row = await crud.find(tx, users.TABLE, pk=pk)
                if row is not None:
                    await users.delete(tx, row)
    async with db.transaction() as tx:
        for pk in gone_groups:
            await crud.delete(tx, "groups", pk=pk)
    report.counts["deleted"] += len(gone_users) + len(gone_groups)


async def _work(db: store.Store, job: sync.Job, report: sync.Report) -> None:
    found_users, found_groups = await asyncio.to_thread(sync.fetch, job)
    linked = sync.Linked()
    await sync.sync_users(db, job, found_users, report, linked)
    written = await sync.sync_groups(db, job, found_groups, report, linked)
    if job.source["sync_groups"]:
        field = job.source["group_membership_field"]
        if job.source["lookup_groups_from_user"]:
            members, parents = memberships.wanted_from_users(found_users, written, field, linked)
        else:
            members, parents = memberships.wanted(written, field, linked)
        if job.source["sync_users"]:
            await memberships.apply_members(db, members, linked, report)
        await memberships.apply_parents(db, job, parents, linked, report)
    if job.source["delete_not_found_objects"]:
        await _delete_unseen(db, job, linked, report)


async def _finish(
    db: store.Store, pk: str, holder: str, status: str, report: sync.Report, *, began: bool = True
) -> wire.sources.SyncStatus:
    """Record how the run ended (`began`: whether `_start` recorded its start)."""
    now = util.now()
    values: dict[str, Any] = {
        "running_since": None,
        "finished": now,
        "status": status,
        "counts": dict(report.counts),
        "messages": report.messages,
    }
    if status != "error":
        values["last_successful"] = now
    if not began:
        values["started"] = now
    async with db.transaction() as tx:
        if await crud.exists(tx, records.SYNCS, source=pk):
            await crud.update(tx, records.SYNCS, {"source": pk}, values)
        await crud.delete(tx, "leases", name=records.lease_name(pk), holder=holder)
        row = await crud.find(tx, records.SYNCS, source=pk)
    return records.status(row, running=False)


async def run(
    db: store.Store, keyring: crypto.Keyring, pk: str, holder: str
) -> wire.sources.SyncStatus | None:
    """Sync source `pk` now; None when it does not exist or another process is syncing it."""
    try:
        job = await _start(db, keyring, pk, holder)
    except client.DirectoryError as exc:  # its settings cannot be used (the bind password)
        report = sync.Report(messages=[str(exc)[:500]])
        return await _finish(db, pk, holder, "error", report, began=False)
    if job is None:
        return None
    report = sync.Report()
    renewer = asyncio.create_task(_renew(db, pk, holder))
    started = time.perf_counter()
    status = "done"
    failure: Exception | None = None
    try:
        await _work(db, job, report)
        status = "warning" if report.counts["skipped"] or report.messages else "done"
    except client.DirectoryError as exc:
        status = "error"
        report.messages.insert(0, str(exc)[:500])
    except store.StoreUnavailable as exc:
        status = "error"
        report.messages.insert(0, f"the store was unavailable: {exc}"[:500])
    except Exception as exc:  # an edge: a bug must not leave the source marked as running
        status, failure = "error", exc
        report.messages.insert(0, f"the sync failed ({type(exc).__name__}); see the logs")
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    took = time.perf_counter() - started
    log.info(
        "ldap source synced",
        source=job.source["slug"],
        status=status,
        seconds=round(took, 3),
        **dict(report.counts),
    )
    finished = await _finish(db, pk, holder, status, report)
    if failure is not None:
        raise failure
    return finished


def due(row: dict[str, Any] | None, now: dt.datetime, every: dt.timedelta) -> bool:
    """Whether a source whose last run is `row` is due for another."""
    if row is None or row["started"] is None:
        return True
    if row["running_since"] is not None and now - row["running_since"] < every:
        return False
    return bool(now - row["started"] >= every)
