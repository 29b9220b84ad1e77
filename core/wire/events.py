"""Wire models of `/api/v3/events/events/` (read-only audit log)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera.core.wire.common import Response


class Event(Response):
    pk: str
    user: dict[str, Any]
    action: str
    app: str
    context: dict[str, Any]
    client_ip: str | None
    created: dt.datetime
    expires: dt.datetime
    brand: dict[str, Any]
