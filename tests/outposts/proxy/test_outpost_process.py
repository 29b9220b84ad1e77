"""`tessera outpost proxy` as a process against a real core: a proxy provider and an outpost made
through the admin API, the outpost's token read back, two replicas (no sticky sessions), a
restart, and a session ended at the core refused by every replica within 2 s."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import proxykit
import pytest
from helpers import TESSERA, Server, base_env, free_port
from proxykit import (
    DOMAIN,
    OutpostProcess,
    admin,
    browse,
    check_headers,
    cookie_header,
    make_proxy_outpost,
    outpost_for,
    serving,
    status_of,
)

from tessera.outposts import proxy


@pytest.fixture
def outposts() -> Iterator[list[OutpostProcess]]:
    started: list[OutpostProcess] = []
    yield started
    for outpost in started:
        outpost.stop()


@pytest.mark.slow
async def test_replicas_restarts_and_session_end(
    core: Server, tmp_path: Path, outposts: list[OutpostProcess]
) -> None:
    port = free_port()
    external = f"http://app.{DOMAIN}:{port}"
    outpost_row, token = make_proxy_outpost(core, external)
    first = OutpostProcess(core, token, tmp_path, port)
    outposts.append(first)
    await first.ready()
    original = f"{external}/page"
    async with proxykit.browser() as browser, aiohttp.ClientSession() as client:
        start = f"{external}/outpost.goauthentik.io/start?rd=" + original
        final, visited = await browse(browser, start, core.url)
        assert visited[-1] == original, visited
        headers = check_headers(port, original, Cookie=cookie_header(browser))
        async with client.get(first.check, headers=headers) as r:
            assert r.status == 200
            assert r.headers["X-authentik-username"] == "akadmin"
            assert r.headers["X-authentik-meta-outpost"] == outpost_row["name"]
        async with client.get(f"http://127.0.0.1:{first.metrics_port}/metrics") as r:
            exposed = await r.text()
        assert 'tessera_outpost_proxy_checks_total{outcome="authenticated"} 1.0' in exposed
        assert "tessera_outpost_proxy_providers 1.0" in exposed
        # a second replica, no shared state, no stickiness: the same cookie works
        second = OutpostProcess(core, token, tmp_path)
        outposts.append(second)
        await second.ready()
        assert await status_of(client, second, headers) == 200
        # a restart keeps the session (it lives in the cookie)
        first.stop()
        first = OutpostProcess(core, token, tmp_path, port)
        outposts.append(first)
        await first.ready()
        assert await status_of(client, first, headers) == 200
        # both replicas report to the core
        health = f"outposts/instances/{outpost_row['pk']}/health/"

        async def both_connected() -> bool:
            return len(admin(core, "GET", health)) >= 2

        await proxykit.until(both_connected, timeout=20)
        # the session ends at the core (the application's end-session runs the logout flow)
        slug = outpost_row["name"]
        await browse(browser, f"{core.url}/application/o/{slug}/end-session/", core.url)
        ended = time.monotonic()

        async def refused_everywhere() -> bool:
            states = [await status_of(client, o, headers) for o in (first, second)]
            return all(s == 302 for s in states)

        await proxykit.until(refused_everywhere, timeout=5)
        assert time.monotonic() - ended < 2.0
        # a replica started after the session ended never saw SESSION_END: it asks the core
        third = OutpostProcess(core, token, tmp_path)
        outposts.append(third)
        await third.ready()
        assert await status_of(client, third, headers) == 302


async def test_a_wrong_token_stops_the_outpost_with_a_clear_message(
    core: Server, tmp_path: Path
) -> None:
    env = base_env(
        AUTHENTIK_HOST=core.url,
        AUTHENTIK_TOKEN="not-a-token",
        AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{free_port()}",
        AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
        AUTHENTIK_STATE_DIR=str(tmp_path / "state"),
    )
    proc = await asyncio.create_subprocess_exec(
        TESSERA, "outpost", "proxy", env=env, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert b"token" in err.lower()


async def test_attributes_reach_the_application_through_ak_proxy(core: Server) -> None:
    """A proxy provider made through the API, its config read with the outpost's token: the
    user's `additionalHeaders` and HTTP Basic credentials from user and group attributes (the
    core's `ak_proxy` scope mapping, merged group then user) reach the application."""
    suffix = uuid.uuid4().hex[:6]
    group = admin(
        core,
        "POST",
        "core/groups/",
        {"name": f"proxy-group-{suffix}", "attributes": {"svc_user": "from-the-group"}},
    )
    username = f"proxy-user-{suffix}"
    user = admin(
        core,
        "POST",
        "core/users/",
        {
            "username": username,
            "name": "Proxy User",
            "email": f"{username}@example.com",
            "groups": [group["pk"]],
            "attributes": {
                "additionalHeaders": {"X-Team": "blue", "X-authentik-username": "root"},
                "svc_password": "pw-123",
            },
        },
    )
    password = "pw-" + uuid.uuid4().hex
    admin(core, "POST", f"core/users/{user['pk']}/set_password/", {"password": password})
    port = free_port()
    external = f"http://app.{DOMAIN}:{port}"
    _outpost, token = make_proxy_outpost(
        core,
        external,
        basic_auth_enabled=True,
        basic_auth_user_attribute="svc_user",
        basic_auth_password_attribute="svc_password",
    )
    status, page = core.request("GET", "/api/v3/outposts/proxy/", token)
    assert status == 200 and len(page["results"]) == 1
    outpost = outpost_for(core, page["results"][0])
    original = f"{external}/x"
    check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        start = outpost.registry.providers[0].start_url(original)
        await browse(browser, start, core.url, username=username, password=password)
        headers = check_headers(port, original, Cookie=cookie_header(browser))
        async with browser.get(check, headers=headers) as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-authentik-username"] == username
            assert r.headers["X-authentik-groups"] == f"proxy-group-{suffix}"
            assert r.headers["X-Team"] == "blue"
            expected = base64.b64encode(b"from-the-group:pw-123").decode()
            assert r.headers["Authorization"] == f"Basic {expected}"
    await outpost.close()
