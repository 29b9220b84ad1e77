"""Contract cases for `core/users`, `core/groups` and `core/tokens`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from akcontract import Case, Setup


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
]
