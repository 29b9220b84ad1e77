"""The LDAP sources' schedule: every enabled source is synced every `EVERY` (2 hours).

`tessera worker` runs `scheduler` beside the maintenance one (and a server does too when its
worker is embedded). Every `CHECK` seconds it looks for enabled sources whose last run started
`EVERY` ago or more (or that never ran) and runs them one after another; the per-source lease
(`runner`) keeps two processes from syncing one source at once, and a run that another process
holds is simply skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog

from tessera.core import crypto, store
from tessera.core.identity import util
from tessera.core.sources.ldap import records, runner
from tessera.core.store import crud

log = structlog.get_logger(__name__)
EVERY = dt.timedelta(hours=2)
CHECK = 60.0  # seconds between looks for sources that are due


async def due_sources(db: store.Store, every: dt.timedelta = EVERY) -> list[str]:
    now = util.now()
    async with db.read() as tx:
        sources = await crud.rows(
            tx, records.TABLE, [crud.Filter("enabled", "eq", True)], ordering=("name",)
        )
        syncs = {r["source"]: r for r in await crud.all_rows(tx, records.SYNCS)}
    return [s["pk"] for s in sources if runner.due(syncs.get(s["pk"]), now, every)]


async def tick(db: store.Store, keyring: crypto.Keyring, holder: str) -> int:
    """Run the sources that are due; how many ran."""
    ran = 0
    for pk in await due_sources(db):
        if await runner.run(db, keyring, pk, holder) is not None:
            ran += 1
    return ran


async def scheduler(
    db: store.Store, keyring: crypto.Keyring, holder: str, check: float = CHECK
) -> None:
    """Run `tick` every `check` seconds until cancelled."""
    while True:
        try:
            await tick(db, keyring, holder)
        except store.StoreUnavailable as exc:
            log.warning("ldap source sync skipped: store unavailable", reason=str(exc))
        except Exception:  # an edge: one failed run must not end all later ones
            log.exception("ldap source sync failed")
        await asyncio.sleep(check)
