"""The SAML sessions (`saml_sessions`): which login session each assertion was issued in, kept
for Single Logout until it expires; the maintenance sweep removes the expired ones."""

from __future__ import annotations

from tessera.core import store
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "saml_sessions"


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired rows (at most `limit`); how many went."""
    return await crud.delete_matching(tx, TABLE, [crud.Filter("expires", "lte", util.now())], limit)
