"""The directory's change journal (`directory_changes`): which users and groups changed, in
commit order.

The store's triggers write it on every change of a user, group, membership, group parent or
LDAP search grant (migration 0015); the LDAP provider reads it (`providers.ldap.directory`: its
largest `seq` is the directory's generation, and outposts ask for what changed since theirs).
Maintenance (`tasks`) removes rows older than `KEEP`, never the newest one, which is the
generation; an outpost holding an older generation then gets the whole directory.
"""

from __future__ import annotations

import datetime as dt

from tessera.core import store
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "directory_changes"
KEEP = dt.timedelta(days=2)


async def remove_old(tx: store.Tx, limit: int | None = None, now: dt.datetime | None = None) -> int:
    """Delete rows older than `KEEP` (at most `limit`), but the newest; how many went."""
    newest = int(await crud.max_value(tx, TABLE, "seq") or 0)
    cutoff = (now or util.now()) - KEEP
    old = [crud.Filter("created", "lt", cutoff), crud.Filter("seq", "lt", newest)]
    return await crud.delete_matching(tx, TABLE, old, limit)
