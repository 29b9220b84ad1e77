"""`AUTHENTIK_OUTPOSTS__DISABLE_EMBEDDED_OUTPOST`: the core keeps no managed embedded outpost (one
made earlier is removed at start, as authentik does), `/outpost.goauthentik.io/*` is an unknown
path like any other (404, JSON or a page), and the admin API works and says so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env

from tessera.core import app, config, store

PREFIX = "/outpost.goauthentik.io"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
EMBEDDED = "outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded"


@pytest.fixture
async def disabled(
    aiohttp_client: Callable[..., Awaitable[Any]],
    make_settings: Callable[..., config.Settings],
    bootstrapped: store.Store,
    client: Any,  # a core started first, with the embedded outpost
    api: Any,
) -> Any:
    status, page = await api("GET", EMBEDDED)
    assert status == 200 and len(page["results"]) == 1
    async with client.get("/api/v3/admin/system/", headers=ADMIN) as r:
        assert (await r.json())["embedded_outpost_disabled"] is False
    settings = make_settings(outposts={"disable_embedded_outpost": True})
    return await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))


async def _answer(client: Any, path: str, accept: str) -> tuple[int, str, str]:
    check = {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/"}
    async with client.get(path, headers={**check, "Accept": accept}) as r:
        body = await r.text()
        return r.status, r.content_type, body.replace(path, "<path>")


async def test_the_outposts_paths_are_unknown_paths(disabled: Any) -> None:
    paths = ["/ping", "/auth/traefik", "/auth/nginx", "/start?rd=/", "/callback", "/sign_out"]
    for path in paths:
        for accept in ("application/json", "text/html"):
            answer = await _answer(disabled, PREFIX + path, accept)
            assert answer[0] == 404, path
            unknown = await _answer(disabled, "/no/such/page", accept)
            assert answer[:2] == unknown[:2], (path, accept)


async def test_the_embedded_outpost_is_gone_and_the_api_works(disabled: Any) -> None:
    async with disabled.get("/api/v3/" + EMBEDDED, headers=ADMIN) as r:
        assert r.status == 200
        assert (await r.json())["results"] == []
    async with disabled.get("/api/v3/admin/system/", headers=ADMIN) as r:
        assert r.status == 200
        assert (await r.json())["embedded_outpost_disabled"] is True
    async with disabled.get("/api/v3/outposts/instances/", headers=ADMIN) as r:
        assert r.status == 200
    # a signed query on any host is no outpost's either
    headers = {"Host": "app.example.com"}
    async with disabled.get("/-/health/live/?X-authentik-logout=true", headers=headers) as r:
        assert r.status == 200


def test_tessera_server_with_the_key_set(tmp_path: Path) -> None:
    """authentik's variable, as a compose file sets it, read by `tessera server`."""
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_OUTPOSTS__DISABLE_EMBEDDED_OUTPOST="true",
    )
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        status, _ = server.request("GET", PREFIX + "/ping")
        assert status == 404
        status, page = server.request("GET", "/api/v3/" + EMBEDDED, BOOTSTRAP_TOKEN)
        assert (status, page["results"]) == (200, [])
    finally:
        server.stop()
