"""Wire models of `/api/v3/events/events/` (read-only audit log)."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

from tessera.core.wire.common import Response, Uuid
from tessera.core.wire.event_names import EventAction

ACTIONS = frozenset(typing.get_args(EventAction))
# authentik's action for events named outside its vocabulary (its prefix of custom actions).
CUSTOM_ACTION: EventAction = "custom_"


def action(stored: str) -> EventAction:
    """authentik's name for a stored action. Tessera records only authentik's names; a row
    written under any other name reads as a custom event rather than break a client's parse."""
    return typing.cast(EventAction, stored) if stored in ACTIONS else CUSTOM_ACTION


class Event(Response):
    pk: Uuid
    user: dict[str, Any]
    action: EventAction
    app: str
    context: dict[str, Any]
    client_ip: str | None
    created: dt.datetime
    expires: dt.datetime
    brand: dict[str, Any]
