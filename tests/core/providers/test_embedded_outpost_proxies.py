"""The embedded outpost behind real reverse proxies: a `tessera server` (SQLite; and two serving
processes on PostgreSQL) is the forward-auth server itself, as authentik's compose labels name
it. Traefik v3's middleware is exactly those three labels, pointed at the core; nginx and Caddy
as in docs/forward-auth.md. A whole login with a cookie jar, through the proxy, back at the
original URL with the upstream seeing the identity; then the session ended at the core and the
provider taken off the outpost, each refused in time on every serving process."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import proxykit
import pytest
from helpers import (
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    SECRET_KEY,
    Server,
    base_env,
    free_port,
    pg_env,
)
from proxykit import DOMAIN, admin, browse, serving

HOST = proxykit.APP_HOST
PROXIES = proxykit.REVERSE_PROXIES


def _public(port: int) -> str:
    return f"http://auth.{DOMAIN}:{port}"


def _core_env(port: int) -> dict[str, str]:
    return {
        "AUTHENTIK_SECRET_KEY": SECRET_KEY,
        "AUTHENTIK_BOOTSTRAP_PASSWORD": BOOTSTRAP_PASSWORD,
        "AUTHENTIK_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
        # where browsers reach the core (not the address the proxies reach it at, as in a
        # deployment; nginx would otherwise rewrite the core's redirects to its own host)
        "AUTHENTIK_WEB__PUBLIC_URL": _public(port),
    }


@pytest.fixture
def sqlite_core(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    server = Server(base_env(**_core_env(port)), tmp_path, port=port)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def postgresql_core(tmp_path: Path, fresh_database: str) -> Iterator[Server]:
    """Two serving processes on one PostgreSQL (no Redis: the bus is PostgreSQL's too)."""
    port = free_port()
    extra = {k: v for k, v in _core_env(port).items() if k != "AUTHENTIK_SECRET_KEY"}
    env = pg_env(fresh_database, **extra, AUTHENTIK_WEB__WORKERS="2")
    server = Server(env, tmp_path, port=port)
    server.wait_ready(60)
    yield server
    server.stop()


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    async with serving(proxykit.echo_app()) as port:
        yield port


def _assign(core: Server, external: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A forward_single provider for `external` on the embedded outpost; (outpost, provider)."""
    flows = {
        slug: admin(core, "GET", f"flows/instances/{slug}/")["pk"]
        for slug in ("default-provider-authorization-implicit-consent", "default-invalidation-flow")
    }
    provider = admin(
        core,
        "POST",
        "providers/proxy/",
        {
            "name": "embedded app",
            "authorization_flow": flows["default-provider-authorization-implicit-consent"],
            "invalidation_flow": flows["default-invalidation-flow"],
            "external_host": external,
            "mode": "forward_single",
        },
    )
    admin(
        core,
        "POST",
        "core/applications/",
        {"name": "app", "slug": "app", "provider": provider["pk"]},
    )
    query = urllib.parse.urlencode({"managed__iexact": "goauthentik.io/outposts/embedded"})
    [outpost] = admin(core, "GET", f"outposts/instances/?{query}")["results"]
    admin(core, "PATCH", f"outposts/instances/{outpost['pk']}/", {"providers": [provider["pk"]]})
    return outpost, provider


async def _status(browser: aiohttp.ClientSession, url: str) -> int:
    async with browser.get(url, allow_redirects=False) as r:
        await r.read()
        return r.status


async def _every_process(
    browser: aiohttp.ClientSession, url: str, wanted: set[int], seconds: float
) -> float:
    """Seconds until every answer was one of `wanted`: from then on, ten requests in a row (new
    connections, spread over the serving processes) answer so."""
    started = time.monotonic()
    since, streak = time.monotonic(), 0
    while streak < 10:
        assert time.monotonic() - started < seconds + 5, "never settled"
        sent = time.monotonic()
        if await _status(browser, url) in wanted:
            since, streak = (sent, 1) if streak == 0 else (since, streak + 1)
        else:
            streak = 0
            await asyncio.sleep(0.02)
    took = since - started
    assert took < seconds, f"{took:.2f} s, not within {seconds} s"
    return took


async def _whole_login(core: Server, kind: str, upstream: int, work: Path) -> None:
    port = free_port()
    outpost, _provider = _assign(core, f"http://{HOST}:{port}")
    server = PROXIES[kind](work, port, f"127.0.0.1:{core.port}", upstream)
    try:
        await server.ready()
        async with proxykit.browser() as browser:
            url = f"http://{HOST}:{port}/private/page?q=1"

            async def routed() -> bool:  # Traefik applies its file provider after listening
                return await _status(browser, url) == 302

            await proxykit.until(routed, timeout=20)
            # a session spanning several cookies (32 KiB header lines at the core): no session
            # here, but read, not refused by the server's header limit
            big = "; ".join(f"authentik_proxy_{i:08x}={'A' * 3000}" for i in range(6))
            check = f"{core.url}/outpost.goauthentik.io/auth/traefik"
            forwarded = {"X-Forwarded-Host": f"{HOST}:{port}", "X-Forwarded-Uri": "/"}
            async with (
                aiohttp.ClientSession() as direct,
                direct.get(check, headers={**forwarded, "Cookie": big}, allow_redirects=False) as r,
            ):
                assert r.status == 302, await r.text()
            public = _public(core.port)
            final, visited = await browse(browser, url, public)
            assert final.status == 200, (kind, visited, await final.text())
            assert any("/outpost.goauthentik.io/start?" in u for u in visited), visited
            assert any(u.startswith(public + "/if/flow/") for u in visited), visited
            assert visited[-1] == url  # back at the original URL
            echoed = json.loads(await final.text())
            headers = {k.lower(): v for k, v in echoed["headers"].items()}
            assert echoed["path"] == "/private/page?q=1"
            assert headers["x-authentik-username"] == "akadmin"
            # logged in on every serving process (one that did not make the session asks once)
            await _every_process(browser, url, {200}, 5.0)

            # logout at the core: refused within 2 s on every serving process
            executor = f"{public}/api/v3/flows/executor/default-invalidation-flow/"
            csrf = [c.value for c in browser.cookie_jar if c.key == "authentik_csrf"]
            async with browser.get(executor, headers={"X-authentik-CSRF": csrf[0]}) as r:
                assert r.status == 200, await r.text()
            refused = {302, 401}  # to log in again (nginx: its error_page's 302)
            await _every_process(browser, url, refused, 2.0)

            # the provider leaves the embedded outpost: within 1 s no process serves it
            admin(core, "PATCH", f"outposts/instances/{outpost['pk']}/", {"providers": []})
            # (Traefik and Caddy pass the core's 400 on; nginx makes any check not 2xx/401 a 500)
            await _every_process(browser, url, {400, 500}, 1.0)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PROXIES))
async def test_whole_login_through_a_real_proxy_to_a_lone_server(
    sqlite_core: Server, kind: str, upstream: int, tmp_path: Path
) -> None:
    await _whole_login(sqlite_core, kind, upstream, tmp_path)


@pytest.mark.slow
async def test_whole_login_through_traefik_to_two_processes_on_postgresql(
    postgresql_core: Server, upstream: int, tmp_path: Path
) -> None:
    await _whole_login(postgresql_core, "traefik", upstream, tmp_path)
