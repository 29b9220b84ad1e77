"""`tessera outpost proxy` as a process against a real core: a proxy provider and an outpost made
through the admin API, the outpost's token read back, two replicas (no sticky sessions), a
restart, and a session ended at the core refused by every replica within 2 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import proxykit
import pytest
from helpers import TESSERA, Server, base_env, free_port
from proxykit import DOMAIN, Process, admin, browse, check_headers, cookie_header


class Outpost:
    """One `tessera outpost proxy` replica."""

    def __init__(self, core: Server, token: str, work: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        env = base_env(
            AUTHENTIK_HOST=core.url,
            AUTHENTIK_TOKEN=token,
            AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{self.port}",
            AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
            AUTHENTIK_STATE_DIR=str(work / "state"),
        )
        self.process = Process([TESSERA, "outpost", "proxy"], work, self.port, env=env)

    @property
    def check(self) -> str:
        return f"http://127.0.0.1:{self.port}/outpost.goauthentik.io/auth/traefik"

    async def ready(self) -> None:
        await self.process.ready(30)

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def outposts() -> Iterator[list[Outpost]]:
    started: list[Outpost] = []
    yield started
    for outpost in started:
        outpost.stop()


def make_outpost(core: Server, external: str) -> tuple[dict[str, Any], str]:
    """A forward_single proxy provider, its application and an outpost; the outpost's token."""
    name = "proxied-" + uuid.uuid4().hex[:8]
    flows = {
        slug: admin(core, "GET", f"flows/instances/{slug}/")["pk"]
        for slug in ("default-provider-authorization-implicit-consent", "default-invalidation-flow")
    }
    provider = admin(
        core,
        "POST",
        "providers/proxy/",
        {
            "name": name,
            "authorization_flow": flows["default-provider-authorization-implicit-consent"],
            "invalidation_flow": flows["default-invalidation-flow"],
            "external_host": external,
            "mode": "forward_single",
        },
    )
    admin(
        core, "POST", "core/applications/", {"name": name, "slug": name, "provider": provider["pk"]}
    )
    outpost = admin(
        core,
        "POST",
        "outposts/instances/",
        {"name": name, "type": "proxy", "providers": [provider["pk"]], "config": {}},
    )
    key = admin(core, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/")["key"]
    return outpost, str(key)


async def status_of(
    client: aiohttp.ClientSession, outpost: Outpost, headers: dict[str, str]
) -> int:
    async with client.get(outpost.check, headers=headers, allow_redirects=False) as r:
        return r.status


@pytest.mark.slow
async def test_replicas_restarts_and_session_end(
    core: Server, tmp_path: Path, outposts: list[Outpost]
) -> None:
    port = free_port()
    external = f"http://app.{DOMAIN}:{port}"
    outpost_row, token = make_outpost(core, external)
    first = Outpost(core, token, tmp_path, port)
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
        # a second replica, no shared state, no stickiness: the same cookie works
        second = Outpost(core, token, tmp_path)
        outposts.append(second)
        await second.ready()
        assert await status_of(client, second, headers) == 200
        # a restart keeps the session (it lives in the cookie)
        first.stop()
        first = Outpost(core, token, tmp_path, port)
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
        third = Outpost(core, token, tmp_path)
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
