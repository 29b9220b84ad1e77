"""The system settings an admin changes through `/api/v3/admin/settings/`, kept durably.

One JSON object in `system_state` under `settings`, holding only the values an admin set (a key
left out means "Tessera's default"). `api.admin` writes it; the code whose behaviour a setting
changes reads it in its own transaction (`events.record` reads `event_retention`,
`identity.users` reads `avatars`).
"""

from __future__ import annotations

from typing import Any

from tessera.core.store import crud

TABLE = "system_state"
KEY = "settings"


async def stored(tx: crud.Tx) -> dict[str, Any]:
    """The values an admin set, by authentik's setting name."""
    row = await crud.find(tx, TABLE, key=KEY)
    return dict(row["value"]) if row is not None else {}


async def save(tx: crud.Tx, values: dict[str, Any]) -> None:
    """Replace the stored values (serialised with every other writer of the settings)."""
    await crud.lock(tx, "system-settings")
    if await crud.find(tx, TABLE, key=KEY) is None:
        await crud.insert(tx, TABLE, {"key": KEY, "value": values})
    else:
        await crud.update(tx, TABLE, {"key": KEY}, {"value": values})
