"""The initial-setup flow: sets akadmin's email and password once, then refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from helpers import SECRET_KEY

from tessera.core import app, config, flows, identity, store
from tessera.core.crypto import Keyring

SETUP = "/api/v3/flows/executor/initial-setup/"


@pytest.fixture
async def fresh(
    aiohttp_client: Callable[..., Awaitable[Any]], settings: config.Settings, db: store.Store
) -> Any:
    """A core bootstrapped without a password: initial setup is pending."""
    async with db.transaction() as tx:
        await identity.bootstrap.run(tx, Keyring(SECRET_KEY), password=None, token=None, email="")
        await flows.defaults.ensure(tx)
    return await aiohttp_client(app.create_app(settings, db, run_tasks=False))


async def test_initial_setup_sets_email_and_password_then_refuses(fresh: Any) -> None:
    body = await (await fresh.get(SETUP)).json()
    assert body["component"] == "ak-stage-prompt"
    assert [f["field_key"] for f in body["fields"]] == ["email", "password", "password_repeat"]
    body = await (
        await fresh.post(
            SETUP,
            json={"email": "me@example.com", "password": "a-long-pass", "password_repeat": "other"},
        )
    ).json()
    assert body["component"] == "ak-stage-prompt" and "password_repeat" in body["response_errors"]
    body = await (
        await fresh.post(
            SETUP, json={"email": "not-an-email", "password": "p", "password_repeat": "p"}
        )
    ).json()
    assert "email" in body["response_errors"]
    body = await (
        await fresh.post(
            SETUP,
            json={
                "email": "me@example.com",
                "password": "a-long-pass",
                "password_repeat": "a-long-pass",
            },
        )
    ).json()
    assert body == {"component": "xak-flow-redirect", "to": "/if/user/"}
    me = await (await fresh.get("/api/v3/core/users/me/")).json()
    assert me["user"]["username"] == "akadmin" and me["user"]["email"] == "me@example.com"
    fresh.session.cookie_jar.clear()
    again = await (await fresh.get(SETUP)).json()
    assert again["component"] == "ak-stage-access-denied"
    login = "/api/v3/flows/executor/default-authentication-flow/"
    await fresh.get(login)
    await fresh.post(login, json={"uid_field": "akadmin"})
    done = await (await fresh.post(login, json={"password": "a-long-pass"})).json()
    assert done["component"] == "xak-flow-redirect"


async def test_two_racing_visitors_cannot_both_claim_the_instance(fresh: Any) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of 127.0.0.1
    async with aiohttp.ClientSession(base_url=str(fresh.make_url("/")), cookie_jar=jar) as other:
        await _race(fresh, other)


async def _race(fresh: Any, other: Any) -> None:
    for client in (fresh, other):
        assert (await (await client.get(SETUP)).json())["component"] == "ak-stage-prompt"
    answers = await asyncio.gather(
        *(
            client.post(
                SETUP,
                json={
                    "email": f"{i}@example.com",
                    "password": f"pass-{i}-long",
                    "password_repeat": f"pass-{i}-long",
                },
            )
            for i, client in enumerate((fresh, other))
        )
    )
    components = sorted([(await a.json())["component"] for a in answers])
    assert components == ["ak-stage-access-denied", "xak-flow-redirect"]


async def test_initial_setup_refuses_when_bootstrapped_with_a_password(client: Any) -> None:
    body = await (await client.get(SETUP)).json()
    assert body["component"] == "ak-stage-access-denied"
