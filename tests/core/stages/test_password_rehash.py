"""The argon2id cost is a setting; a stored hash of another cost is replaced at the next login."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import argon2
import pytest
from aiohttp import test_utils

from tessera.core import app, config, store
from tessera.core.crypto import passwords
from tessera.core.store import crud

LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
PASSWORD = "pw-rehash-user-123"


@pytest.fixture
def _restore_default_cost() -> Iterator[None]:
    yield
    passwords.configure(**config.PasswordHashing().model_dump())


async def _login(client: Any, username: str, password: str) -> dict[str, Any]:
    client.session.cookie_jar.clear()
    await client.get(LOGIN)
    await client.post(LOGIN, json={"uid_field": username})
    response = await client.post(LOGIN, json={"password": password})
    return dict(await response.json())


@pytest.mark.usefixtures("_restore_default_cost")
async def test_a_login_rehashes_with_the_configured_cost(
    aiohttp_client: Callable[..., Awaitable[test_utils.TestClient]],  # type: ignore[type-arg]
    make_settings: Callable[..., config.Settings],
    bootstrapped: store.Store,
    make_user: Any,
) -> None:
    user = await make_user("rehashed")
    old = passwords.hash_password(PASSWORD)  # OWASP's default cost
    async with bootstrapped.transaction() as tx:
        await crud.update(tx, "users", {"pk": user["pk"]}, {"password": old})

    cheaper = make_settings(password_hashing={"memory_kib": 12 * 1024, "time_cost": 3})
    client = await aiohttp_client(app.create_app(cheaper, bootstrapped, run_tasks=False))
    wrong = await _login(client, "rehashed", "not-the-password")
    assert wrong["component"] == "ak-stage-password" and wrong["response_errors"]
    async with bootstrapped.read() as tx:
        assert (await crud.get(tx, "users", pk=user["pk"]))[
            "password"
        ] == old  # no rehash on failure

    assert (await _login(client, "rehashed", PASSWORD))["component"] == "xak-flow-redirect"
    async with bootstrapped.read() as tx:
        stored = (await crud.get(tx, "users", pk=user["pk"]))["password"]
    params = argon2.extract_parameters(stored)
    assert (params.memory_cost, params.time_cost, params.parallelism) == (12 * 1024, 3, 1)
    assert passwords.verify_password(stored, PASSWORD)
    assert (await _login(client, "rehashed", PASSWORD))["component"] == "xak-flow-redirect"


def test_out_of_range_costs_stop_the_configuration() -> None:
    with pytest.raises(config.ConfigError, match="AUTHENTIK_PASSWORD_HASHING__MEMORY_KIB"):
        config.load(password_hashing={"memory_kib": 64})
    with pytest.raises(config.ConfigError, match="AUTHENTIK_PASSWORD_HASHING__TIME_COST"):
        config.load(password_hashing={"time_cost": 0})
