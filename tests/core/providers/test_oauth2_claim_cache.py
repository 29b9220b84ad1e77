"""Userinfo and introspection answer from the claim cache, and a revocation or a deactivation
holds at once in the process that made it (for the other replicas within one second, see
`tests/core/test_replicas_postgresql.py`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import test_utils
from oauth2kit import basic, code_tokens, login, make_provider, token

from tessera.core.providers.oauth2 import claimcache
from tessera.core.providers.oauth2.views import SERVICE

Client = test_utils.TestClient  # type: ignore[type-arg]
USERINFO = "/application/o/userinfo/"
INTROSPECT = "/application/o/introspect/"


def _cache(client: Client) -> claimcache.ClaimCache:
    return client.app[SERVICE].claim_cache


async def _userinfo(client: Client, access: str) -> tuple[int, Any]:
    response = await client.get(USERINFO, headers={"Authorization": f"Bearer {access}"})
    return response.status, await response.json()


async def _introspect(client: Client, provider: dict[str, Any], raw: str) -> dict[str, Any]:
    headers = basic(provider["client_id"], provider["client_secret"])
    response = await client.post(INTROSPECT, data={"token": raw}, headers=headers)
    assert response.status == 200
    return dict(await response.json())


async def _service_token(client: Client, provider: dict[str, Any]) -> str:
    answer = await token(client, provider, grant_type="client_credentials", scope="openid profile")
    assert answer.status == 200, await answer.text()
    return str((await answer.json())["access_token"])


async def _listening(*clients: Client) -> None:
    """Wait until each app's bus subscription is up (the cache is bypassed until then)."""
    deadline = time.monotonic() + 5
    while not all(_cache(c).db.hears_others for c in clients):
        assert time.monotonic() < deadline, "the bus subscription did not come up"
        await asyncio.sleep(0.02)


async def test_userinfo_is_answered_from_the_cache_until_the_token_is_revoked(
    client: Client, api: Any
) -> None:
    provider = await make_provider(api, "cached")
    await login(client)
    tokens = await code_tokens(client, provider)
    await _listening(client)
    cache = _cache(client)
    status, first = await _userinfo(client, tokens["access_token"])
    assert status == 200 and first["preferred_username"] == "akadmin"
    hits = cache.hits
    for _ in range(3):
        assert await _userinfo(client, tokens["access_token"]) == (200, first)
    assert cache.hits == hits + 3
    assert (await _introspect(client, provider, tokens["access_token"]))["active"] is True
    hits = cache.hits
    assert (await _introspect(client, provider, tokens["access_token"]))["active"] is True
    assert cache.hits == hits + 1

    revoked = await client.post(
        "/application/o/revoke/",
        data={"token": tokens["access_token"]},
        headers=basic(provider["client_id"], provider["client_secret"]),
    )
    assert revoked.status == 200
    status, body = await _userinfo(client, tokens["access_token"])  # at once, same process
    assert status == 401 and body["error"] == "invalid_token"
    assert (await _introspect(client, provider, tokens["access_token"]))["active"] is False


async def test_a_deactivated_users_cached_token_is_refused_at_once(
    client: Client, api: Any
) -> None:
    provider = await make_provider(api, "deactivate")
    access = await _service_token(client, provider)
    await _listening(client)
    assert (await _userinfo(client, access))[0] == 200
    assert (await _introspect(client, provider, access))["active"] is True
    status, users = await api("GET", "core/users/?username=ak-deactivate-client_credentials")
    assert status == 200 and users["results"], users
    pk = users["results"][0]["pk"]
    assert (await api("PATCH", f"core/users/{pk}/", json={"is_active": False}))[0] == 200
    status, body = await _userinfo(client, access)
    assert status == 401 and body["error"] == "invalid_token"
    assert (await _introspect(client, provider, access))["active"] is False


async def test_a_forged_or_foreign_token_is_never_cached(client: Client, api: Any) -> None:
    provider = await make_provider(api, "forged")
    other = await make_provider(api, "other")
    access = await _service_token(client, provider)
    await _listening(client)
    cache = _cache(client)
    before = len(cache)
    head, payload, signature = access.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    for _ in range(3):
        assert (await _userinfo(client, forged))[0] == 401
        assert (await _introspect(client, provider, forged))["active"] is False
    assert len(cache) == before
    # Another client asking about this token learns nothing, also once the owner's answer is kept.
    assert (await _introspect(client, provider, access))["active"] is True
    assert (await _introspect(client, other, access))["active"] is False


async def test_the_cache_is_bypassed_while_the_bus_is_not_heard(client: Client, api: Any) -> None:
    provider = await make_provider(api, "deaf")
    access = await _service_token(client, provider)
    await _listening(client)
    cache = _cache(client)
    assert (await _userinfo(client, access))[0] == 200
    assert len(cache) == 1
    cache.db.hears_others = False
    try:
        hits = cache.hits
        assert (await _userinfo(client, access))[0] == 200
        assert cache.hits == hits  # read from the store, not the cache
    finally:
        cache.db.hears_others = True
