"""Small helpers shared by the identity modules."""

from __future__ import annotations

import datetime as dt
import uuid


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


def normalise_uuid(value: str) -> str:
    """Accept UUIDs with or without hyphens, in any case; store the canonical form."""
    return str(uuid.UUID(value))
