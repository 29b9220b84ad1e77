"""In-process values built from the configuration tables, rebuilt when they may be stale.

A `Snapshots` holds one value (the flow definitions, the OAuth2 clients...) built by a loader
from the store. It is rebuilt when `Store.config_generation` has moved since the build (a commit
that wrote one of `CONFIG_TABLES` in this process, or, through the bus, in another replica), and
at least every `max_age` seconds, which bounds staleness should a bus message be lost. One build
runs at a time; concurrent callers wait for its result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from tessera.core.store import Store

T = TypeVar("T")


class Snapshots(Generic[T]):
    def __init__(self, db: Store, load: Callable[[], Awaitable[T]], max_age: float) -> None:
        self.db = db
        self.max_age = max_age
        self._load = load
        self._value: T | None = None
        self._generation = -1
        self._loaded_at = 0.0
        self._loading = asyncio.Lock()

    def _fresh(self) -> bool:
        return (
            self._value is not None
            and self._generation == self.db.config_generation
            and time.monotonic() - self._loaded_at < self.max_age
        )

    async def get(self) -> T:
        if not self._fresh():
            async with self._loading:  # one load at a time; the others wait for its result
                if not self._fresh():
                    # The generation is read first: a change committed during the load leaves
                    # this value already stale, so the next caller rebuilds it.
                    generation, loaded_at = self.db.config_generation, time.monotonic()
                    self._value = await self._load()
                    self._generation, self._loaded_at = generation, loaded_at
        assert self._value is not None
        return self._value
