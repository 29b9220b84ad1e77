"""Whole logins through the proxy outpost against a real core: the browser (a cookie jar) is sent
from the application to `start`, through the core's login flow, to `callback`, and back to the
original URL with the identity headers; then restarts, replicas, sign-out and machine clients."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid

import aiohttp
import proxykit
from helpers import Server, free_port
from proxykit import (
    DOMAIN,
    admin,
    browse,
    check_headers,
    cookie_header,
    forward_config,
    make_client,
    outpost_for,
    serving,
)

from tessera.outposts import proxy
from tessera.outposts.proxy import identity
from tessera.outposts.proxy.providers import Provider


async def test_forward_single_login_through_the_core(core: Server) -> None:
    port = free_port()
    config = forward_config(core, port)
    outpost = outpost_for(core, config)
    original = f"http://app.{DOMAIN}:{port}/protected/page?x=1"
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
        async with browser.get(
            check, headers=check_headers(port, original), allow_redirects=False
        ) as first:
            assert first.status == 302
            start = first.headers["Location"]
        parts = urllib.parse.urlsplit(start)
        assert parts.netloc == f"app.{DOMAIN}:{port}"
        assert parts.path == "/outpost.goauthentik.io/start"
        assert urllib.parse.parse_qs(parts.query) == {"rd": [original]}
        final, visited = await browse(browser, start, core.url)
        assert any(
            u.startswith(core.url + "/if/flow/default-authentication-flow/") for u in visited
        )
        assert any("/outpost.goauthentik.io/callback?" in u for u in visited)
        assert visited[-1] == original  # back where the user was going
        cookies = cookie_header(browser)
        assert cookies.startswith(Provider.build(config).cookie_name + "=")
        async with browser.get(
            check, headers=check_headers(port, original, Cookie=cookies), allow_redirects=False
        ) as ok:
            assert ok.status == 200, await ok.text()
            assert ok.headers["X-authentik-username"] == "akadmin"
            assert ok.headers["X-authentik-groups"] == "authentik Admins"
            assert ok.headers["X-authentik-meta-app"] == config.assigned_application_slug
            assert ok.headers["X-authentik-meta-version"] == "goauthentik.io/outpost/2026.8.5"
            for name in identity.NAMES:
                assert name in ok.headers, name
    await outpost.close()


async def test_proxy_mode_login_streams_bodies_and_websockets(core: Server) -> None:
    port = free_port()
    async with serving(proxykit.echo_app()) as upstream_port:
        external = f"http://app.{DOMAIN}:{port}"
        slug, client = make_client(core, external)
        config = proxykit.config(
            external_host=external,
            mode="proxy",
            internal_host=f"http://127.0.0.1:{upstream_port}",
            core=core.url,
            slug=slug,
            **client,
        )
        outpost = outpost_for(core, config)
        async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
            final, visited = await browse(
                browser,
                f"{external}/hello?a=b",
                core.url,
                headers={"X-authentik-username": "forged", "X_authentik_groups": "forged"},
            )
            assert final.status == 200, await final.text()
            echoed = json.loads(await final.text())
            assert echoed["path"] == "/hello?a=b"
            assert echoed["headers"]["X-authentik-username"] == "akadmin"
            assert "forged" not in json.dumps(echoed["headers"])
            assert "authentik_proxy_" not in echoed["headers"].get("Cookie", "")
            assert echoed["headers"]["X-Forwarded-Host"] == f"app.{DOMAIN}:{port}"
            assert echoed["headers"]["Host"] == f"127.0.0.1:{upstream_port}"
            big = b"x" * (5 * 1024 * 1024)
            async with browser.post(f"{external}/upload", data=big) as posted:
                assert posted.status == 200
                assert (await posted.json())["body_length"] == len(big)
            async with browser.ws_connect(f"ws://app.{DOMAIN}:{port}/ws") as ws:
                await ws.send_str("hi")
                assert (await ws.receive_str()) == "echo:hi"
        await outpost.close()


async def test_scripts_get_401_and_never_a_login_redirect(core: Server) -> None:
    port = free_port()
    outpost = outpost_for(core, forward_config(core, port))
    original = f"http://app.{DOMAIN}:{port}/api/data"
    async with serving(proxy.create_app(outpost), port), aiohttp.ClientSession() as client:
        base = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/"
        for extra in ({"X-Requested-With": "XMLHttpRequest"}, {"Accept": "application/json"}):
            async with client.get(
                base + "traefik",
                headers=check_headers(port, original, **extra),
                allow_redirects=False,
            ) as r:
                assert r.status == 401
                assert "Set-Cookie" not in r.headers
        async with client.get(
            base + "nginx", headers={"X-Original-URL": original}, allow_redirects=False
        ) as r:
            assert r.status == 401
        async with client.get(
            base + "caddy", headers=check_headers(port, original), allow_redirects=False
        ) as r:
            assert r.status == 302
    await outpost.close()


async def test_sessions_work_on_another_replica_and_after_a_restart(core: Server) -> None:
    port, other = free_port(), free_port()
    config = forward_config(core, port)
    first = outpost_for(core, config)
    original = f"http://app.{DOMAIN}:{port}/x"
    async with proxykit.browser() as browser:
        async with serving(proxy.create_app(first), port):
            await browse(browser, first.registry.providers[0].start_url(original), core.url)
        cookies = cookie_header(browser)
        await first.close()
        # The first replica is gone; a second, fresh process (nothing in memory) accepts the
        # cookie, having asked the core once whether the session still holds.
        second = outpost_for(core, config)
        async with serving(proxy.create_app(second), other), aiohttp.ClientSession() as client:
            check = f"http://127.0.0.1:{other}/outpost.goauthentik.io/auth/traefik"
            headers = check_headers(port, original, Cookie=cookies)
            async with client.get(check, headers=headers, allow_redirects=False) as r:
                assert r.status == 200
                assert r.headers["X-authentik-username"] == "akadmin"
            # SESSION_END for the session's sid: refused at once.
            session = next(iter(second.sessions._open.values()))
            second.session_ended(session.sid)
            async with client.get(check, headers=headers, allow_redirects=False) as r:
                assert r.status == 302
        await second.close()


async def test_sign_out_ends_the_session_here_and_at_the_core(core: Server) -> None:
    port = free_port()
    config = forward_config(core, port)
    outpost = outpost_for(core, config)
    original = f"http://app.{DOMAIN}:{port}/x"
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        await browse(browser, outpost.registry.providers[0].start_url(original), core.url)
        cookies = cookie_header(browser)
        check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
        headers = check_headers(port, original, Cookie=cookies)
        async with browser.get(check, headers=headers, allow_redirects=False) as r:
            assert r.status == 200
        final, visited = await browse(
            browser, f"http://app.{DOMAIN}:{port}/outpost.goauthentik.io/sign_out", core.url
        )
        assert any("/end-session/" in u for u in visited), visited
        assert cookie_header(browser) == ""  # the outpost cleared its cookie
        async with browser.get(check, headers=headers, allow_redirects=False) as r:
            assert r.status == 302  # the old cookie, replayed, no longer works here
    # A replica that never saw the session asks the core, which ended it.
    fresh = outpost_for(core, config)
    async with serving(proxy.create_app(fresh)) as other, aiohttp.ClientSession() as client:
        check = f"http://127.0.0.1:{other}/outpost.goauthentik.io/auth/traefik"
        async with client.get(check, headers=headers, allow_redirects=False) as r:
            assert r.status == 302
    await outpost.close()
    await fresh.close()


async def test_machine_clients_with_bearer_and_app_password(core: Server) -> None:
    port = free_port()
    config = forward_config(core, port)
    outpost = outpost_for(core, config)
    original = f"http://app.{DOMAIN}:{port}/api"
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        await browse(browser, outpost.registry.providers[0].start_url(original), core.url)
        check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
        async with browser.get(
            check, headers=check_headers(port, original, Cookie=cookie_header(browser))
        ) as r:
            token = r.headers["X-authentik-jwt"]
        async with aiohttp.ClientSession() as client:

            async def status(authorization: str) -> tuple[int, str]:
                headers = check_headers(port, original, Authorization=authorization)
                async with client.get(check, headers=headers, allow_redirects=False) as r:
                    return r.status, r.headers.get("X-authentik-username", "")

            assert await status(f"Bearer {token}") == (200, "akadmin")
            assert (await status("Bearer " + token[:-4] + "AAAA"))[0] == 401
            assert (await status("Bearer garbage"))[0] == 401
            identifier = "proxy-app-password-" + uuid.uuid4().hex[:6]
            user = admin(core, "GET", "core/users/?username=akadmin")["results"][0]["pk"]
            admin(
                core,
                "POST",
                "core/tokens/",
                {
                    "identifier": identifier,
                    "intent": "app_password",
                    "user": user,
                    "expiring": False,
                },
            )
            key = admin(core, "GET", f"core/tokens/{identifier}/view_key/")["key"]
            basic = base64.b64encode(f"akadmin:{key}".encode()).decode()
            assert await status(f"Basic {basic}") == (200, "akadmin")
            wrong = base64.b64encode(b"akadmin:wrong-password").decode()
            assert (await status(f"Basic {wrong}"))[0] == 401
            assert (await status("Basic !!!not-base64"))[0] == 401
            as_token = base64.b64encode(f"goauthentik.io/token:{token}".encode()).decode()
            assert await status(f"Basic {as_token}") == (200, "akadmin")
    await outpost.close()


async def test_forward_domain_one_login_for_every_subdomain(core: Server) -> None:
    port = free_port()
    external = f"http://auth.{DOMAIN}:{port}"
    slug, client = make_client(core, external)
    config = proxykit.config(
        external_host=external,
        mode="forward_domain",
        cookie_domain=DOMAIN,
        core=core.url,
        slug=slug,
        **client,
    )
    outpost = outpost_for(core, config)
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
        first = f"http://one.{DOMAIN}:{port}/a"
        async with browser.get(
            check, headers=check_headers(port, first), allow_redirects=False
        ) as r:
            assert r.status == 302
            assert r.headers["Location"].startswith(f"{external}/outpost.goauthentik.io/start?")
            start = r.headers["Location"]
        await browse(browser, start, core.url)
        cookie = next(
            c
            for c in browser.cookie_jar
            if c.key.startswith("authentik_proxy_") and not c.key.endswith("_bind")
        )
        assert cookie["domain"] == DOMAIN
        for host in ("one", "two"):
            url = f"http://{host}.{DOMAIN}:{port}/b"
            async with browser.get(
                check,
                headers=check_headers(port, url, Cookie=cookie_header(browser)),
                allow_redirects=False,
            ) as r:
                assert r.status == 200, host
                assert r.headers["X-authentik-username"] == "akadmin"
        async with browser.get(
            f"{external}/outpost.goauthentik.io/start",
            params={"rd": "http://evil.example.org/"},
            allow_redirects=False,
        ) as r:
            assert r.status == 400
    await outpost.close()


async def test_concurrent_logins_and_scripts_keep_each_tabs_target(core: Server) -> None:
    """authentik's #6886: every login returns to its own page, whatever starts meanwhile."""
    port = free_port()
    outpost = outpost_for(core, forward_config(core, port))
    provider = outpost.registry.providers[0]
    page_a, page_b = (f"http://app.{DOMAIN}:{port}/tab/{n}" for n in ("a", "b"))
    check = f"http://127.0.0.1:{port}/outpost.goauthentik.io/auth/traefik"
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        # two tabs start logging in; the authorization URLs they are sent to
        to_core = []
        for page in (page_a, page_b):
            async with browser.get(provider.start_url(page), allow_redirects=False) as r:
                assert r.status == 302
                to_core.append(r.headers["Location"])
        # a script of the page asks meanwhile: 401, and nothing about the logins changes
        async with browser.get(
            check,
            headers=check_headers(
                port,
                f"http://app.{DOMAIN}:{port}/api/poll",
                **{"X-Requested-With": "XMLHttpRequest"},
            ),
            allow_redirects=False,
        ) as r:
            assert r.status == 401 and "Set-Cookie" not in r.headers
        # the second tab finishes first, then the first: each lands on its own page
        _final, visited_b = await browse(browser, to_core[1], core.url)
        _final, visited_a = await browse(browser, to_core[0], core.url)
        assert visited_b[-1] == page_b
        assert visited_a[-1] == page_a
    await outpost.close()
