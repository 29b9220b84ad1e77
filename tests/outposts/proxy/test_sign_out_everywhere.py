"""Signing out at one proxy provider on one outpost replica ends the core session and, through
SESSION_END on the control channel, every outpost session tied to it: the other provider of the
same outpost, on both `tessera outpost proxy` replicas, and a third provider on the core's
embedded outpost, all refused within 2 s."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import proxykit
import pytest
from helpers import Server, free_port
from proxykit import DOMAIN, OutpostProcess, admin, browse, check_headers

PREFIX = "/outpost.goauthentik.io"


@pytest.fixture
def outposts() -> Iterator[list[OutpostProcess]]:
    started: list[OutpostProcess] = []
    yield started
    for outpost in started:
        outpost.stop()


def _cookies(browser: aiohttp.ClientSession, host: str) -> str:
    """The proxy session cookies the browser holds for `host`, as a Cookie header."""
    return "; ".join(
        f"{c.key}={c.value}"
        for c in browser.cookie_jar
        if c.key.startswith("authentik_proxy_")
        and not c.key.endswith("_bind")
        and c["domain"] == host
    )


def _embedded(core: Server) -> dict[str, Any]:
    query = urllib.parse.urlencode({"managed__iexact": "goauthentik.io/outposts/embedded"})
    [found] = admin(core, "GET", f"outposts/instances/?{query}")["results"]
    return dict(found)


async def _status(client: aiohttp.ClientSession, check: str, headers: dict[str, str]) -> int:
    async with client.get(check, headers=headers, allow_redirects=False) as r:
        return r.status


@pytest.mark.slow
async def test_sign_out_at_one_provider_ends_every_outpost_session_of_that_core_session(
    core: Server, tmp_path: Path, outposts: list[OutpostProcess]
) -> None:
    port = free_port()
    a_url, b_url = f"http://a.{DOMAIN}:{port}", f"http://b.{DOMAIN}:{port}"
    a = proxykit.make_proxy_provider(core, a_url)
    b = proxykit.make_proxy_provider(core, b_url)
    row = admin(
        core,
        "POST",
        "outposts/instances/",
        {"name": a["name"], "type": "proxy", "providers": [a["pk"], b["pk"]], "config": {}},
    )
    token = str(admin(core, "GET", f"core/tokens/{row['token_identifier']}/view_key/")["key"])
    first, second = (
        OutpostProcess(core, token, tmp_path, port),
        OutpostProcess(core, token, tmp_path),
    )
    outposts.extend((first, second))
    # a third provider on the core's own embedded outpost
    c_url = f"http://c.{DOMAIN}:{core.port}"
    c = proxykit.make_proxy_provider(core, c_url)
    embedded = _embedded(core)
    providers = [*embedded["providers"], c["pk"]]
    admin(core, "PATCH", f"outposts/instances/{embedded['pk']}/", {"providers": providers})
    await first.ready()
    await second.ready()
    embedded_check = f"{core.url}{PREFIX}/auth/traefik"

    async with proxykit.browser() as browser, aiohttp.ClientSession() as client:
        # one login at the core, then single sign-on at the two others
        for external in (a_url, b_url, c_url):
            start = f"{external}{PREFIX}/start?rd={external}{PREFIX}/ping"

            async def served(start: str = start) -> bool:  # the embedded one within 1 s
                async with browser.get(start, allow_redirects=False) as r:
                    return r.status == 302

            await proxykit.until(served, timeout=5)
            final, visited = await browse(browser, start, core.url)
            assert final.status == 204 and f"{external}{PREFIX}/callback?" in visited[-2], visited
        checks = [
            (outpost.check, check_headers(port, f"{url}/page", Cookie=_cookies(browser, host)))
            for outpost in (first, second)
            for url, host in ((a_url, f"a.{DOMAIN}"), (b_url, f"b.{DOMAIN}"))
        ]
        checks.append(
            (
                embedded_check,
                check_headers(0, f"{c_url}/page", Cookie=_cookies(browser, f"c.{DOMAIN}")),
            )
        )
        assert [await _status(client, *check) for check in checks] == [200] * 5
        health = f"outposts/instances/{row['pk']}/health/"

        async def both_connected() -> bool:
            return len(admin(core, "GET", health)) >= 2

        await proxykit.until(both_connected, timeout=20)

        # sign out at provider A on the second replica (as a proxy in front of it would send)
        sign_out = f"http://127.0.0.1:{second.port}{PREFIX}/sign_out"
        async with browser.get(
            sign_out,
            headers={"X-Forwarded-Host": f"a.{DOMAIN}:{port}", "Cookie": checks[2][1]["Cookie"]},
            allow_redirects=False,
        ) as r:
            assert r.status == 302
            end_session = r.headers["Location"]
        assert end_session.startswith(f"{core.url}/application/o/{a['name']}/end-session/")
        await browse(browser, end_session, core.url)  # the core's logout flow
        ended = time.monotonic()

        async def refused_everywhere() -> bool:
            return all([await _status(client, *check) == 302 for check in checks])

        await proxykit.until(refused_everywhere, timeout=5)
        assert time.monotonic() - ended < 2.0
