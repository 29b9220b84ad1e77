"""The audit log: events written in the same transaction as the change they describe.

The API layer calls `record` for every write (`model_created`, `model_updated` with the changed
fields, `model_deleted`), the recovery view for logins. Context passes through `sanitize`, which
replaces any value under a secret-looking key, so secrets never reach the log table. An event
expires after the retention its caller passes (the configuration's), unless an admin set
`event_retention` in the system settings (`store.system_settings`, read in the same transaction).
An event's `app` is the module that recorded it, unless the caller names one; `origins` says
which of authentik's apps that is (the event matcher policy matches on authentik's labels).
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Any

from tessera.core import logs, store, wire
from tessera.core.events import origins as origins  # the package hands it on
from tessera.core.store import crud, system_settings

TABLE = "events"
REDACTED = "********************"
_HIDDEN_FIELDS = {"password", "key", "key_data", "key_sealed", "key_digest", "client_secret"}


def sanitize(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with secret-looking keys' values redacted."""
    if depth > 20:
        return REDACTED
    if isinstance(value, dict):
        return {
            k: REDACTED if logs.is_secret_key(k) else sanitize(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [sanitize(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def actor(user: dict[str, Any] | None) -> dict[str, Any]:
    if user is None:
        return {"pk": None, "username": "AnonymousUser"}
    return {"pk": user["pk"], "username": user["username"], "email": user.get("email", "")}


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Changed fields as authentik shows them: `{field: {previous_value, new_value}}`."""
    changes = {}
    for key in after:
        if key in _HIDDEN_FIELDS or before.get(key) == after[key]:
            continue
        changes[key] = {"previous_value": before.get(key), "new_value": after[key]}
    return sanitize(changes)  # type: ignore[no-any-return]


async def record(
    tx: store.Tx,
    action: str,
    *,
    user: dict[str, Any] | None,
    client_ip: str | None,
    context: dict[str, Any],
    retention: dt.timedelta,
    app: str | None = None,
) -> None:
    """Append an event; it expires after `retention` (the configured default), or after the
    `event_retention` an admin set in the system settings. `app`: the module that records it,
    by default the caller's (as authentik records the calling module)."""
    if app is None:
        app = str(sys._getframe(1).f_globals.get("__name__", "tessera.core"))
    if action not in wire.events.ACTIONS:  # authentik's clients refuse any other name
        raise ValueError(f"{action!r} is not one of authentik's event actions")
    now = dt.datetime.now(dt.UTC)
    retention = await _retention(tx, retention)
    await crud.append(
        tx,
        TABLE,
        {
            "pk": str(uuid.uuid4()),
            "action": action,
            "app": app,
            "user": actor(user),
            "context": sanitize(context),
            "client_ip": client_ip,
            "created": now,
            "expires": now + retention,
        },
    )


def http_request(method: str, path: str, user_agent: str) -> dict[str, str]:
    """The `http_request` context of an event, as authentik records it: the request's method,
    path (never its query string, which can carry codes and tokens), user agent and request id.
    The client's address is the event's own `client_ip`."""
    described = {"method": method, "path": path, "user_agent": user_agent[:512]}
    request_id = logs.request_id()
    if request_id:
        described["request_id"] = request_id
    return described


async def _retention(tx: store.Tx, default: dt.timedelta) -> dt.timedelta:
    chosen = (await system_settings.stored(tx)).get("event_retention")
    return wire.durations.parse(chosen) if isinstance(chosen, str) else default


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired events (at most `limit`); how many went."""
    now = dt.datetime.now(dt.UTC)
    return await crud.delete_matching(tx, TABLE, [crud.Filter("expires", "lte", now)], limit)
