"""Contract cases for `core/users`, `core/groups`, `core/tokens` and
`core/authenticated_sessions`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from akcontract import Case, Setup
from tessera.core.identity import sessions


async def _user(setup: Setup) -> dict[str, Any]:
    group = await setup.make("core/groups", {"name": f"staff-{setup.suffix}"})
    return {
        "username": f"ada-{setup.suffix}",
        "name": "Ada Lovelace",
        "email": f"ada-{setup.suffix}@example.com",
        "is_active": True,
        "path": "users/contract",
        "attributes": {"team": "engines"},
        "groups": [group["pk"]],
        "roles": [],
        "type": "internal",
        "last_login": "2026-11-30T08:15:00+00:00",
    }


async def _group(setup: Setup) -> dict[str, Any]:
    user = await setup.make("core/users", {"username": f"grace-{setup.suffix}", "name": "Grace"})
    first = await setup.make("core/groups", {"name": f"staff-{setup.suffix}"})
    second = await setup.make("core/groups", {"name": f"engineers-{setup.suffix}"})
    return {
        "name": f"admins-{setup.suffix}",
        "is_superuser": False,
        "parents": [first["pk"], second["pk"]],
        "attributes": {"floor": 3},
        "users": [user["pk"]],
        "roles": [],
    }


async def _token(setup: Setup) -> dict[str, Any]:
    user = await setup.make("core/users", {"username": f"bot-{setup.suffix}", "name": "Bot"})
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
    return {
        "identifier": f"sync-{setup.suffix}",
        "intent": "api",
        "user": user["pk"],
        "description": "user sync",
        "expires": expires.isoformat(),
        "expiring": True,
    }


async def _session(setup: Setup) -> uuid.UUID:
    """A login session of a new user (sessions come from logins, never from the API)."""
    user = await setup.make("core/users", {"username": f"sess-{setup.suffix}", "name": "S"})
    async with setup.store.transaction() as tx:
        await sessions.create(tx, user["pk"], dt.timedelta(hours=1), user_agent="curl/8.5.0")
    found = await setup.first("core/authenticated_sessions", user__username=user["username"])
    return uuid.UUID(found["uuid"])  # as the client reads it


CASES = [
    Case("core/users", _user, change={"name": "Ada King"}, patch={"is_active": False}),
    Case("core/groups", _group, change={"name": "renamed"}, patch={"attributes": {"floor": 4}}),
    Case(
        "core/tokens",
        _token,
        change={"description": "user sync v2"},
        patch={"description": "patched"},
        lookup="identifier",
    ),
    Case("core/authenticated_sessions", lookup="uuid", existing=_session),
]
