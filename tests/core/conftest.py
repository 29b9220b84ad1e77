"""Fixtures for core tests: a bootstrapped core behind aiohttp's test client, and factories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import test_utils
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY

from tessera.core import app, config, flows, identity, store, wire
from tessera.core.crypto import Keyring

Client = test_utils.TestClient  # type: ignore[type-arg]


@pytest.fixture
async def bootstrapped(db: store.Store) -> store.Store:
    async with db.transaction() as tx:
        await identity.bootstrap.run(
            tx,
            Keyring(SECRET_KEY),
            password=BOOTSTRAP_PASSWORD,
            token=BOOTSTRAP_TOKEN,
            email="root@example.com",
        )
        await flows.defaults.ensure(tx)
    return db


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: config.Settings,
    bootstrapped: store.Store,
) -> Client:
    application = app.create_app(settings, bootstrapped, run_tasks=False)
    served = await aiohttp_client(application)
    # as `tessera server` serves it: authenticated forward-auth checks before the router
    assert served.server.runner is not None
    app.embedded.hot_path(app.served(served.server.runner), application, application[app.METRICS])
    return served


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}


@pytest.fixture
def api(client: Client, admin_headers: dict[str, str]) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """`await api("POST", "core/users/", json={...})` -> (status, JSON body or None), as akadmin."""

    async def call(
        method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        response = await client.request(
            method, f"/api/v3/{path}", headers=headers or admin_headers, **kwargs
        )
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body

    return call


@pytest.fixture
def make_user(
    api: Callable[..., Awaitable[tuple[int, Any]]],
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def make(username: str, **fields: Any) -> dict[str, Any]:
        status, body = await api("POST", "core/users/", json={"username": username, **fields})
        assert status == 201, body
        return dict(body)

    return make


@pytest.fixture
def make_group(
    api: Callable[..., Awaitable[tuple[int, Any]]],
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def make(name: str, **fields: Any) -> dict[str, Any]:
        status, body = await api("POST", "core/groups/", json={"name": name, **fields})
        assert status == 201, body
        return dict(body)

    return make


@pytest.fixture
def make_token(bootstrapped: store.Store) -> Callable[..., Awaitable[str]]:
    """A fresh API token for `username` (created directly in the store, as the CLI does)."""

    async def make(username: str, **fields: Any) -> str:
        async with bootstrapped.transaction() as tx:
            user = await identity.users.find_by_username(tx, username)
            assert user is not None
            body = wire.core.TokenRequest(
                identifier=f"t-{username}-{len(fields)}-{id(fields)}", **fields
            )
            _, key = await identity.tokens.create(tx, Keyring(SECRET_KEY), body, user_pk=user["pk"])
        return key

    return make
