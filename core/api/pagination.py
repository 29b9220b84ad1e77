"""authentik's pagination: `?page=&page_size=` (default 20, max 100), page numbers in the body."""

from __future__ import annotations

import math
from typing import Any

from tessera.core import errors, wire

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000


def _int(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.ValidationFailed.one(name, "A valid integer is required.") from None
    if value < 1:
        raise errors.ValidationFailed.one(name, "Ensure this value is greater than or equal to 1.")
    return value


def window(params: Any) -> tuple[int, int]:
    """(page, page_size) from query parameters; page_size is capped at MAX_PAGE_SIZE."""
    page = _int(params, "page", 1)
    if page > MAX_PAGE:
        raise errors.ObjectNotFound("Invalid page.")
    return page, min(_int(params, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)


def envelope(page: int, page_size: int, count: int, shown: int) -> wire.common.Pagination:
    total_pages = max(1, math.ceil(count / page_size))
    start = (page - 1) * page_size + 1 if shown else 0
    return wire.common.Pagination(
        next=page + 1 if page < total_pages else 0,
        previous=page - 1 if page > 1 else 0,
        count=count,
        current=page,
        total_pages=total_pages,
        start_index=start,
        end_index=start + shown - 1 if shown else 0,
    )
