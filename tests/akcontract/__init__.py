"""The contract table: every `/api/v3` resource Tessera serves, driven through authentik's client.

One `Case` per collection path (`core/users`), in the family modules below. A case says how to
make a valid object (the body authentik's client sends on create), what an update and a partial
update change, and which request fields the response does not echo (write-only ones). The test
(`tests/core/api/test_authentik_client.py`) runs list, retrieve, create, update, partial update
and delete for each, as far as Tessera serves them, and fails naming any collection path of the
OpenAPI document that has no case.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Api = Callable[..., Awaitable[tuple[int, Any]]]


@dataclass
class Setup:
    """What a case's factories may use: the raw API as akadmin, a unique suffix for names, and
    the store (for objects no API creates, such as authenticator devices)."""

    api: Api
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    store: Any = None

    async def make(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a prerequisite over the raw API (not through the client under test)."""
        status, created = await self.api("POST", f"{path}/", json=body)
        assert status == 201, (path, status, created)
        return dict(created)

    async def first(self, path: str, **query: str) -> dict[str, Any]:
        status, page = await self.api("GET", f"{path}/", params=query)
        assert status == 200 and page["results"], (path, status, page)
        return dict(page["results"][0])


Body = Callable[[Setup], Awaitable[dict[str, Any]]]
Existing = Callable[[Setup], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    path: str  # the collection path under /api/v3/, without slashes at the ends
    body: Body | None = None  # the create body; None where Tessera serves no create
    change: dict[str, Any] = field(default_factory=dict)  # what PUT changes (on the create body)
    patch: dict[str, Any] = field(default_factory=dict)  # what PATCH sends
    lookup: str = "pk"  # the response field that addresses the object
    write_only: frozenset[str] = frozenset()  # request fields the response does not echo
    existing: Existing | None = None  # the lookup of an object to read, where there is no create

    def __str__(self) -> str:
        return self.path
