"""Fixtures of the control-channel tests: outposts made in the bootstrapped store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from hubkit import Outpost, create_outpost

from tessera.core import store


@pytest.fixture
def make_outpost(bootstrapped: store.Store) -> Callable[..., Awaitable[Outpost]]:
    async def make(name: str, providers: list[int] | None = None) -> Outpost:
        return await create_outpost(bootstrapped, name, providers)

    return make
