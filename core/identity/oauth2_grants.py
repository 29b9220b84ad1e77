"""Expiry of the OAuth2 provider's stored state (grants, codes, refresh tokens, revoked token ids,
device codes), for the scheduled maintenance. The provider itself lives in `providers.oauth2`."""

from __future__ import annotations

from tessera.core import store
from tessera.core.identity import util
from tessera.core.store import crud

# Children before their grants (the foreign keys cascade, but counting is clearer this way).
_TABLES = (
    "oauth2_codes",
    "oauth2_refresh_tokens",
    "oauth2_access_ids",
    "oauth2_revoked",
    "oauth2_device_codes",
    "oauth2_grants",
)


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired rows of every table above, at most `limit` in all; how many went."""
    now = util.now()
    removed = 0
    for table in _TABLES:
        left = None if limit is None else limit - removed
        if left == 0:
            break
        filters = [crud.Filter("expires", "lte", now)]
        removed += await crud.delete_matching(tx, table, filters, left)
    return removed
