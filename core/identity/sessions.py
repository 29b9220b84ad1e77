"""Login sessions: created by the user_login stage and recovery links, ended by logout, by the
user revoking them, by an admin deactivating or deleting the user, and by expiry.

Every function here that deletes sessions announces their digests on the transaction
(`Tx.announced[ENDED]`); once it commits, `outpost_hub` sends SESSION_END for each to every
connected outpost, in every replica, so that an outpost drops what it cached of the session.

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
ENDED = "sessions.ended"  # the topic of `Tx.announced` listing the digests of ended sessions
# Visitors who are not logged in (or no longer) get a key of this form, which holds their flow in
# progress; a session key never contains a dot (urlsafe base64).
ANONYMOUS = "anon."
_BATCH = 500


def anonymous_key() -> str:
    """A fresh key for a browser without a session (never stored, never a login)."""
    return ANONYMOUS + secrets.token_urlsafe(32)


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


def _announce(tx: store.Tx, digests: list[str]) -> None:
    if digests:
        tx.announced.setdefault(ENDED, set()).update(digests)


async def end(tx: store.Tx, key: str) -> None:
    """End the session whose cookie value is `key` (logout)."""
    await end_digest(tx, digest(key))


async def end_digest(tx: store.Tx, key_digest: str) -> bool:
    """End the session stored under `key_digest`; False when there was none."""
    if await crud.delete(tx, TABLE, key_digest=key_digest):
        _announce(tx, [key_digest])
        return True
    return False


async def end_all(tx: store.Tx, user_pk: int, *, keep: str | None = None) -> int:
    """End every session of the user but the one stored under `keep`; how many ended.

    Deactivating or deleting a user, "log out everywhere", `terminate_other_sessions`.
    """
    ended = 0
    while True:
        filters = [crud.Filter("user_pk", "eq", user_pk)]
        if keep is not None:
            filters.append(crud.Filter("key_digest", "ne", keep))
        rows = await crud.rows(tx, TABLE, filters, limit=_BATCH)
        digests = [row["key_digest"] for row in rows]
        if not digests:
            return ended
        await crud.delete_matching(tx, TABLE, [crud.Filter("key_digest", "in", digests)])
        _announce(tx, digests)
        ended += len(digests)


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired sessions (at most `limit`); how many went."""
    filters = [crud.Filter("expires", "lte", util.now())]
    return await crud.delete_matching(tx, TABLE, filters, limit)
