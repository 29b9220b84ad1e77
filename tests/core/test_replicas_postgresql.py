"""Two core replicas on one PostgreSQL and no Redis behave as one: they share the cache and the
bus through PostgreSQL (`store.pgcache`).

Each replica is an application of its own with its own Store (its own connection pools), as two
pods would be; only the database is common.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import oauth2kit
import pytest
from aiohttp import test_utils
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN

from tessera.core import app, config, store
from tessera.core.api import state
from tessera.core.providers.oauth2.views import SERVICE
from tessera.core.store import pgcache

Client = test_utils.TestClient  # type: ignore[type-arg]
FLOW = "/api/v3/flows/executor/default-authentication-flow/"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
async def replicas(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: Callable[..., config.Settings],
    bootstrapped: store.Store,
) -> AsyncIterator[tuple[Client, Client]]:
    settings = make_settings(
        login_throttle={"per_username": 3, "per_ip": 100, "window_seconds": 60}
    )
    assert not settings.redis.host
    other = store.Store(settings)
    await other.open()
    first = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    second = await aiohttp_client(app.create_app(settings, other, run_tasks=False))
    for client in (first, second):
        assert isinstance(client.app[state.CACHE], pgcache.PostgresCache)
    yield first, second
    await other.close()


async def _post(client: Client, body: dict[str, Any], session: str) -> dict[str, Any]:
    response = await client.post(FLOW, json=body, headers=_cookie(session))
    assert response.status == 200
    return dict(await response.json())


def _cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"authentik_session={session}"}


async def _start(client: Client) -> str:
    client.session.cookie_jar.clear()
    response = await client.get(FLOW)
    assert response.status == 200
    return response.cookies["authentik_session"].value


async def _me(client: Client, session: str) -> int:
    return (await client.get("/api/v3/core/users/me/", headers=_cookie(session))).status


async def _within_one_second(check: Callable[[], Awaitable[bool]]) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < 1.0, "not seen by the other replica within 1 s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_login_flow_started_on_one_replica_finishes_on_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    anonymous = await _start(first)
    body = await _post(
        second, {"component": "ak-stage-identification", "uid_field": "akadmin"}, anonymous
    )
    assert body["component"] == "ak-stage-password"  # the flow state made on the first
    response = await first.post(
        FLOW,
        json={"component": "ak-stage-password", "password": BOOTSTRAP_PASSWORD},
        headers=_cookie(anonymous),
    )
    assert (await response.json())["component"] == "xak-flow-redirect"
    session = response.cookies["authentik_session"].value
    assert await _me(first, session) == 200
    assert await _me(second, session) == 200


async def test_a_logout_on_one_replica_holds_on_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    session = await _log_in(first)
    assert await _me(second, session) == 200
    csrf = first.session.cookie_jar.filter_cookies(first.make_url("/"))["authentik_csrf"].value
    response = await first.get(
        "/api/v3/flows/executor/default-invalidation-flow/",
        headers={**_cookie(session), "X-authentik-CSRF": csrf},
    )
    assert (await response.json())["component"] == "xak-flow-redirect"
    await _within_one_second(lambda: _refused(second, session))


async def _refused(client: Client, session: str) -> bool:
    return await _me(client, session) == 401


async def _log_in(client: Client) -> str:
    anonymous = await _start(client)
    await _post(client, {"component": "ak-stage-identification", "uid_field": "akadmin"}, anonymous)
    response = await client.post(
        FLOW,
        json={"component": "ak-stage-password", "password": BOOTSTRAP_PASSWORD},
        headers=_cookie(anonymous),
    )
    assert (await response.json())["component"] == "xak-flow-redirect"
    return response.cookies["authentik_session"].value


async def test_a_token_revoked_on_one_replica_fails_on_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    response = await first.post(
        "/api/v3/core/tokens/", json={"identifier": "replica-test", "intent": "api"}, headers=ADMIN
    )
    assert response.status == 201, await response.text()
    key_response = await first.get("/api/v3/core/tokens/replica-test/view_key/", headers=ADMIN)
    key = (await key_response.json())["key"]
    bearer = {"Authorization": f"Bearer {key}"}
    assert (await second.get("/api/v3/core/users/me/", headers=bearer)).status == 200
    deleted = await first.delete("/api/v3/core/tokens/replica-test/", headers=ADMIN)
    assert deleted.status == 204

    async def refused() -> bool:
        return (await second.get("/api/v3/core/users/me/", headers=bearer)).status == 401

    await _within_one_second(refused)


async def test_a_config_change_on_one_replica_is_seen_by_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    await asyncio.sleep(0.2)  # both replicas' bus listeners are up
    before = await (await second.get(FLOW)).json()  # the second caches the flow definitions
    assert before["flow_info"]["title"] == "Welcome to authentik!"
    response = await first.patch(
        "/api/v3/flows/instances/default-authentication-flow/",
        json={"title": "Changed on the first replica"},
        headers=ADMIN,
    )
    assert response.status == 200, await response.text()

    async def seen() -> bool:
        body = await (await second.get(FLOW)).json()
        return bool(body["flow_info"]["title"] == "Changed on the first replica")

    # The snapshot's own age limit is 10 s: within one second, only the bus can have told it.
    await _within_one_second(seen)


async def test_login_throttle_counts_attempts_on_both_replicas(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    for client in (first, second, first):
        anonymous = await _start(client)
        await _post(
            client, {"component": "ak-stage-identification", "uid_field": "akadmin"}, anonymous
        )
        body = await _post(
            client, {"component": "ak-stage-password", "password": "guess"}, anonymous
        )
        assert body["component"] == "ak-stage-password"
    anonymous = await _start(second)
    await _post(second, {"component": "ak-stage-identification", "uid_field": "akadmin"}, anonymous)
    body = await _post(
        second, {"component": "ak-stage-password", "password": BOOTSTRAP_PASSWORD}, anonymous
    )
    assert body["component"] == "ak-stage-access-denied"  # three failures across both: locked


async def _userinfo(client: Client, access: str) -> int:
    response = await client.get(
        "/application/o/userinfo/", headers={"Authorization": f"Bearer {access}"}
    )
    return response.status


async def _introspect(client: Client, provider: dict[str, Any], raw: str) -> bool:
    headers = oauth2kit.basic(provider["client_id"], provider["client_secret"])
    response = await client.post("/application/o/introspect/", data={"token": raw}, headers=headers)
    assert response.status == 200
    return bool((await response.json())["active"])


async def _service_token(client: Client, provider: dict[str, Any]) -> str:
    answer = await oauth2kit.token(
        client, provider, grant_type="client_credentials", scope="openid profile"
    )
    assert answer.status == 200, await answer.text()
    return str((await answer.json())["access_token"])


async def _hearing(*clients: Client) -> None:
    """Wait until each replica's bus subscription is up (the claim cache is bypassed before)."""
    deadline = time.monotonic() + 5
    while not all(c.app[state.STORE].hears_others for c in clients):
        assert time.monotonic() < deadline, "the bus subscription did not come up"
        await asyncio.sleep(0.02)


def _api_of(client: Client) -> Callable[..., Awaitable[tuple[int, Any]]]:
    async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await client.request(method, f"/api/v3/{path}", headers=ADMIN, **kwargs)
        return response.status, await response.json() if response.status != 204 else None

    return call


async def test_a_revocation_on_one_replica_holds_on_the_other_within_a_second(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    await _hearing(first, second)
    provider = await oauth2kit.make_provider(_api_of(first), "replicated")
    access = await _service_token(first, provider)
    assert await _userinfo(second, access) == 200
    assert await _userinfo(second, access) == 200
    assert second.app[SERVICE].claim_cache.hits >= 1  # the second replica answers from its cache
    assert await _introspect(second, provider, access)
    revoked = await first.post(
        "/application/o/revoke/",
        data={"token": access},
        headers=oauth2kit.basic(provider["client_id"], provider["client_secret"]),
    )
    assert revoked.status == 200

    async def refused() -> bool:
        return await _userinfo(second, access) == 401 and not await _introspect(
            second, provider, access
        )

    await _within_one_second(refused)


async def test_a_deactivation_on_one_replica_holds_on_the_other_within_a_second(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    await _hearing(first, second)
    api = _api_of(first)
    provider = await oauth2kit.make_provider(api, "replicated-user")
    access = await _service_token(first, provider)
    assert await _userinfo(second, access) == 200
    assert await _userinfo(second, access) == 200
    status, users = await api("GET", "core/users/?username=ak-replicated-user-client_credentials")
    assert status == 200 and users["results"], users
    pk = users["results"][0]["pk"]
    assert (await api("PATCH", f"core/users/{pk}/", json={"is_active": False}))[0] == 200

    async def refused() -> bool:
        return await _userinfo(second, access) == 401

    await _within_one_second(refused)
