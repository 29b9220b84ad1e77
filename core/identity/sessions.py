"""Login sessions: created by recovery links now and by the user_login stage later.

# SECURITY: the cookie value is a 256-bit random key; the store keeps only its sha256 (which is
# also the `session_id` of the control channel's SESSION_END message), so a dump reveals no
# usable session.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from tessera.core import crypto, store
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "sessions"
COOKIE = "authentik_session"


def digest(key: str) -> str:
    return crypto.secrets.sha256_hex(key)


async def create(
    tx: store.Tx, user_pk: int, ttl: dt.timedelta, *, ip: str = "", user_agent: str = ""
) -> tuple[str, dict[str, Any]]:
    """A new session of the user: its key, and the user's row with `last_login` now."""
    key = secrets.token_urlsafe(32)
    await crud.append(
        tx,
        TABLE,
        {
            "key_digest": digest(key),
            "user_pk": user_pk,
            "last_ip": ip[:45],
            "last_user_agent": user_agent[:512],
            "expires": util.now() + ttl,
            "created": util.now(),
        },
    )
    user = await crud.update(
        tx, "users", {"pk": user_pk}, {"last_login": util.now()}, recoverable=False
    )
    return key, user


async def user_for(tx: store.Tx, key: str) -> dict[str, Any] | None:
    """The active user of a live session, or None."""
    if not key or len(key) > 128:
        return None
    row = await crud.find(tx, TABLE, key_digest=digest(key))
    if row is None or row["expires"] <= util.now():
        return None
    user = await crud.find(tx, "users", pk=row["user_pk"])
    return user if user is not None and user["is_active"] else None


async def end(tx: store.Tx, key: str) -> None:
    await crud.delete(tx, TABLE, key_digest=digest(key))


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired sessions (at most `limit`); how many went."""
    filters = [crud.Filter("expires", "lte", util.now())]
    return await crud.delete_matching(tx, TABLE, filters, limit)
