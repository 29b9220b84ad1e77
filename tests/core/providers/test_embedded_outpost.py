"""The embedded outpost: the core serves `/outpost.goauthentik.io/*` for the proxy providers of
"authentik Embedded Outpost", configured through the admin API and refreshed from its commits;
a whole login through the core's own flow, a session ended at the core refused, hostile input
refused with a 4xx (aiohttp's test client; the browser's hosts are `Host` headers)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD
from proxyadminkit import make_proxy_provider
from proxykit import echo_app, serving

from tessera.core.api import state
from tessera.core.app import METRICS, embedded

APP = "http://app.example.com"
PREFIX = "/outpost.goauthentik.io"


def _check(uri: str = "/page?x=1", host: str = "app.example.com") -> dict[str, str]:
    """What Traefik's forwardAuth sends with a check (trustForwardHeader)."""
    return {"X-Forwarded-Proto": "http", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}


async def _traefik(client: Any, headers: dict[str, str] | None = None) -> Any:
    response = await client.get(
        PREFIX + "/auth/traefik", headers={**_check(), **(headers or {})}, allow_redirects=False
    )
    await response.read()
    return response


async def _embedded_outpost(api: Any) -> dict[str, Any]:
    status, page = await api(
        "GET", "outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded"
    )
    assert status == 200, page
    [found] = page["results"]
    return dict(found)


async def _assign(api: Any, outpost: dict[str, Any], providers: list[int]) -> None:
    status, body = await api(
        "PATCH", f"outposts/instances/{outpost['pk']}/", json={"providers": providers}
    )
    assert status == 200, body


async def _within(seconds: float, predicate: Any) -> float:
    """Seconds until `predicate()` held; fails after `seconds`."""
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _csrf(client: Any) -> dict[str, str]:
    found = [c.value for c in client.session.cookie_jar if c.key == "authentik_csrf"]
    return {"X-authentik-CSRF": found[0]} if found else {}


async def _visit(client: Any, url: str) -> Any:
    """GET an absolute URL of any host on the test server (its host as `Host`)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    response = await client.get(
        path, headers={"Host": parts.netloc, "Accept": "text/html"}, allow_redirects=False
    )
    await response.read()
    return response


async def _flow(
    client: Any, host: str, slug: str, user: tuple[str, str] = ("akadmin", BOOTSTRAP_PASSWORD)
) -> str:
    """Answer the core's flow `slug` as `user` (name, password); where it sends the browser."""
    executor = f"/api/v3/flows/executor/{slug}/"
    headers = {"Host": host}
    for _ in range(6):
        async with client.get(executor, headers={**headers, **_csrf(client)}) as r:
            body = await r.json()
        component = body.get("component")
        if component == "xak-flow-redirect":
            return str(body["to"])
        answer: dict[str, Any]
        if component == "ak-stage-identification":
            answer = {"uid_field": user[0]}
            if body.get("password_fields"):
                answer["password"] = user[1]
        elif component == "ak-stage-password":
            answer = {"password": user[1]}
        elif component == "ak-stage-consent":
            answer = {"token": body["token"]}
        else:
            raise AssertionError(f"unexpected challenge {body}")
        async with client.post(executor, json=answer, headers={**headers, **_csrf(client)}) as r:
            body = await r.json()
        if body.get("component") == "xak-flow-redirect":
            return str(body["to"])
        assert not body.get("response_errors"), body
    raise AssertionError("the flow did not finish")


async def _login(
    client: Any, start: str, user: tuple[str, str] = ("akadmin", BOOTSTRAP_PASSWORD)
) -> list[str]:
    """Follow a browser from `start` through the core's login to the end; the URLs visited."""
    url, visited = start, [start]
    for _ in range(15):
        response = await _visit(client, url)
        parts = urllib.parse.urlsplit(url)
        if response.status in (301, 302, 303):
            url = urllib.parse.urljoin(url, response.headers["Location"])
        elif parts.path.startswith("/if/flow/"):
            slug = parts.path.split("/")[3]
            url = urllib.parse.urljoin(url, await _flow(client, parts.netloc, slug, user))
        else:
            return visited  # the application's page (no upstream here: the core's 404)
        visited.append(url)
    raise AssertionError(f"too many hops: {visited}")


@pytest.fixture
async def assigned(api: Any, client: Any) -> dict[str, Any]:
    """A forward_single provider for APP assigned to the embedded outpost through the API."""
    provider = await make_proxy_provider(
        api, "app", external_host=APP, mode="forward_single", internal_host=""
    )
    outpost = await _embedded_outpost(api)
    await _assign(api, outpost, [provider["pk"]])

    async def served() -> bool:
        return bool((await _traefik(client)).status == 302)

    await _within(1.0, served)
    return {"provider": provider, "outpost": outpost}


async def _hot_path_io(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What a hundred checks with the session's cookie ask of the store, the cache and the
    router (from requests: the core's background loops, such as the LDAP directory pusher, read
    on their own schedule; authenticated checks are answered before the router, `hotpath`)."""
    touched: list[str] = []
    db, cache = client.app[state.STORE], client.app[state.CACHE]
    for target, names in (
        (db, ("read", "transaction")),
        (cache, ("get", "set", "add", "pop", "incr")),
        (client.app.router, ("resolve",)),
    ):
        for name in names:
            original = getattr(target, name)

            def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                if _serving_a_request():
                    touched.append(_name)
                return _original(*args, **kw)

            monkeypatch.setattr(target, name, spy)
    for _ in range(100):
        assert (await _traefik(client)).status == 200
    monkeypatch.undo()
    return touched


def _serving_a_request() -> bool:
    """Whether the running task is one of aiohttp's request handlers (a connection's task)."""
    task = asyncio.current_task()
    return task is not None and "RequestHandler" in repr(task.get_coro())


async def test_login_headers_logout_and_unassignment(
    api: Any, client: Any, assigned: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    unauthenticated = await _traefik(client)
    assert unauthenticated.status == 302
    start = unauthenticated.headers["Location"]
    assert start.startswith(APP + PREFIX + "/start?")
    rd = urllib.parse.parse_qs(urllib.parse.urlsplit(start).query)["rd"]
    assert rd == [APP + "/page?x=1"]

    visited = await _login(client, start)
    assert any(urllib.parse.urlsplit(u).path == "/application/o/authorize/" for u in visited)
    assert any("/callback?" in u for u in visited)
    assert visited[-1] == APP + "/page?x=1"  # back at the original URL

    ok = await _traefik(client)
    assert ok.status == 200
    assert ok.headers["X-authentik-username"] == "akadmin"
    assert ok.headers["X-authentik-email"] == "root@example.com"
    assert "authentik Admins" in ok.headers["X-authentik-groups"]
    assert ok.headers["X-authentik-uid"] and ok.headers["X-authentik-name"]
    assert ok.headers["X-authentik-meta-outpost"] == "authentik Embedded Outpost"
    assert ok.headers["X-authentik-meta-app"] == "app"
    served = client.app[METRICS].requests.labels(PREFIX + "/auth/traefik", "GET", "200")
    before = served._value.get()
    assert await _hot_path_io(client, monkeypatch) == []
    # the middlewares' duties, done for the answers given before the router
    assert served._value.get() == before + 100
    assert (await _traefik(client)).headers["X-Request-ID"]

    # Logout at the core (its invalidation flow): the cookie is refused within 2 s.
    async with client.get(
        "/api/v3/flows/executor/default-invalidation-flow/", headers=_csrf(client)
    ) as r:
        assert r.status == 200

    async def refused() -> bool:
        return bool((await _traefik(client)).status == 302)

    await _within(2.0, refused)

    # The provider leaves the outpost: no longer served within 1 s.
    await _assign(api, assigned["outpost"], [])

    async def gone() -> bool:
        return bool((await _traefik(client)).status == 400)

    await _within(1.0, gone)


async def test_a_config_change_is_served_without_a_request_reading_the_store(
    api: Any, client: Any, assigned: dict[str, Any]
) -> None:
    state = client.app[embedded.EMBEDDED]
    before = state.generation
    status, _ = await api(
        "PATCH",
        f"providers/proxy/{assigned['provider']['pk']}/",
        json={"skip_path_regex": "/public/.*"},
    )
    assert status == 200

    async def skipped() -> bool:
        response = await _traefik(client, _check("/public/x"))
        return bool(response.status == 200)

    await _within(1.0, skipped)
    assert state.generation > before


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/auth/traefik", _check(host="nobody.example.com")),  # host naming no provider
        ("/auth/traefik", {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "x" * 9000}),
        ("/auth/nginx", {"Host": "app.example.com", "X-Original-URL": "not a url"}),
        ("/start?rd=https://evil.example.net/", {"Host": "app.example.com"}),  # open redirect
        ("/start?rd=//evil.example.net/", {"Host": "app.example.com"}),
        ("/start?rd=javascript:alert(1)", {"Host": "app.example.com"}),
        ("/start", {"Host": "nobody.example.com"}),
        ("/callback?state=garbage&code=x", {"Host": "app.example.com"}),
        ("/callback?error=access_denied", {"Host": "app.example.com"}),
        ("/sign_out", {"Host": "nobody.example.com"}),
    ],
)
async def test_hostile_requests_are_4xx(
    client: Any, assigned: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    response = await client.get(PREFIX + path, headers=headers, allow_redirects=False)
    await response.read()
    assert 400 <= response.status < 500, (response.status, await response.text())


async def test_a_garbage_cookie_is_no_session(client: Any, assigned: dict[str, Any]) -> None:
    for value in ("garbage", "a" * 3000, "x.y.z", "%00%ff"):
        response = await client.get(
            PREFIX + "/auth/traefik",
            headers={**_check(), "Cookie": f"authentik_proxy_00000000={value}"},
            allow_redirects=False,
        )
        assert response.status == 302  # to log in, never in, never a 500
        scripted = await client.get(
            PREFIX + "/auth/traefik",
            headers={
                **_check(),
                "Cookie": f"authentik_proxy_00000000={value}",
                "Accept": "application/json",
            },
            allow_redirects=False,
        )
        assert scripted.status == 401


async def test_a_hostile_host_does_not_disturb_the_core(
    client: Any, assigned: dict[str, Any]
) -> None:
    for host in ("", "a b", "x" * 300, "[::1", "evil.example.com:99999999"):
        response = await client.get(
            PREFIX + "/auth/traefik", headers={**_check(), "Host": host}, allow_redirects=False
        )
        assert response.status in (302, 400), (host, response.status)
    async with client.get("/-/health/live/", headers={"Host": "app.example.com"}) as r:
        assert r.status == 200  # not a proxy-mode host: the core's own route


async def test_a_proxy_mode_host_is_the_outposts_and_the_cores_host_stays_the_cores(
    api: Any, client: Any
) -> None:
    provider = await make_proxy_provider(
        api, "proxied", external_host="http://proxied.example.com", mode="proxy"
    )
    await _assign(api, await _embedded_outpost(api), [provider["pk"]])

    async def proxied() -> bool:
        async with client.get(
            "/", headers={"Host": "proxied.example.com"}, allow_redirects=False
        ) as r:
            location = str(r.headers.get("Location", ""))
            return bool(r.status == 302) and location.startswith(
                "http://proxied.example.com/outpost.goauthentik.io/start?"
            )

    await _within(1.0, proxied)
    async with client.get("/-/health/live/", headers={"Host": "core.example.com"}) as r:
        assert r.status == 200
    async with client.get("/api/v3/root/config/", headers={"Host": "core.example.com"}) as r:
        assert r.status == 200


async def _start_location(client: Any) -> str:
    response = await client.get(
        PREFIX + "/start?rd=/", headers={"Host": "app.example.com"}, allow_redirects=False
    )
    assert response.status == 302, await response.text()
    return str(response.headers["Location"])


@pytest.mark.parametrize(
    ("authentik_host", "login_at"),
    [
        ("https://auth.example.com/", "https://auth.example.com/application/o/authorize/?"),
        ("HTTPS://auth.example.com:8443/sub/path", "https://auth.example.com:8443/application/o/"),
        ("", "http://app.example.com/application/o/authorize/?"),  # the request's host
    ],
)
async def test_browsers_log_in_at_the_authentik_host(
    api: Any, client: Any, assigned: dict[str, Any], authentik_host: str, login_at: str
) -> None:
    outpost = assigned["outpost"]
    config = {**outpost["config"], "authentik_host": authentik_host}
    status, body = await api(
        "PATCH", f"outposts/instances/{outpost['pk']}/", json={"config": config}
    )
    assert status == 200, body

    async def moved() -> bool:
        return (await _start_location(client)).startswith(login_at)

    await _within(1.0, moved)
    assert (await _traefik(client)).status == 302  # checks go on whatever the host


@pytest.mark.parametrize(
    "authentik_host", ["javascript:alert(1)", "https://a b.example.com", "//evil.example.net"]
)
async def test_an_authentik_host_that_is_no_url_is_refused(
    api: Any, client: Any, assigned: dict[str, Any], authentik_host: str
) -> None:
    outpost = assigned["outpost"]
    config = {**outpost["config"], "authentik_host": authentik_host}
    status, body = await api(
        "PATCH", f"outposts/instances/{outpost['pk']}/", json={"config": config}
    )
    assert status == 400 and "config" in body
    assert (await _start_location(client)).startswith("http://app.example.com/application/o/")


def test_a_stored_authentik_host_that_is_no_base_is_ignored() -> None:
    assert embedded._normal_base("https://auth.example.com/x/") == "https://auth.example.com"
    assert embedded._normal_base("") == ""
    for bad in ("javascript:alert(1)", "https://a b.example.com", "https://[zz]/", "ftp:x"):
        assert embedded._normal_base(bad) == "", bad


async def test_a_user_deactivated_by_an_admin_is_refused_within_2_s(
    api: Any, client: Any, assigned: dict[str, Any], make_user: Any
) -> None:
    user = await make_user("carol", name="Carol", email="carol@example.com")
    password = "a long enough password for carol"
    status, body = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": password}
    )
    assert status == 204, body
    await _login(client, (await _traefik(client)).headers["Location"], ("carol", password))
    ok = await _traefik(client)
    assert ok.status == 200 and ok.headers["X-authentik-username"] == "carol"

    status, body = await api("PATCH", f"core/users/{user['pk']}/", json={"is_active": False})
    assert status == 200, body

    async def refused() -> bool:
        return bool((await _traefik(client)).status == 302)

    await _within(2.0, refused)


async def test_proxy_mode_through_the_core_to_an_upstream(api: Any, client: Any) -> None:
    async with serving(echo_app()) as upstream:
        provider = await make_proxy_provider(
            api,
            "proxied",
            external_host="http://proxied.example.com",
            mode="proxy",
            internal_host=f"http://127.0.0.1:{upstream}",
        )
        outpost = await _embedded_outpost(api)
        await _assign(api, outpost, [provider["pk"]])
        # The core's pages are not on the proxied host (that host is the upstream's): browsers
        # log in at the core's own host.
        config = {**outpost["config"], "authentik_host": "http://core.example.com"}
        status, body = await api(
            "PATCH", f"outposts/instances/{outpost['pk']}/", json={"config": config}
        )
        assert status == 200, body

        async def proxied() -> bool:
            response = await _visit(client, "http://proxied.example.com/deep?q=1")
            location = str(response.headers.get("Location", ""))
            return bool(response.status == 302) and location.startswith(
                "http://proxied.example.com/outpost.goauthentik.io/start?"
            )

        await _within(1.0, proxied)
        start = (await _visit(client, "http://proxied.example.com/deep?q=1")).headers["Location"]

        async def at_the_core() -> bool:
            login = (await _visit(client, start)).headers.get("Location", "")
            return str(login).startswith("http://core.example.com/application/o/authorize/?")

        await _within(1.0, at_the_core)
        visited = await _login(client, start)
        assert any(u.startswith("http://core.example.com/if/flow/") for u in visited), visited
        forged = {"Host": "proxied.example.com", "X-authentik-username": "mallory"}
        async with client.get("/deep?q=1", headers=forged) as r:
            assert r.status == 200, await r.text()
            echoed = await r.json()
        headers = {k.lower(): v for k, v in echoed["headers"].items()}
        assert echoed["path"] == "/deep?q=1"
        assert headers["x-authentik-username"] == "akadmin"  # the client's own was dropped
        assert headers["x-forwarded-host"] == "proxied.example.com"
        # the core's own routes on another host are untouched
        async with client.get("/api/v3/root/config/", headers={"Host": "core.example.com"}) as r:
            assert r.status == 200


# Callback and logout on any path of a provider's host ------------------------------------------


async def test_a_signature_on_any_path_of_a_providers_host_is_the_outposts(
    client: Any, assigned: dict[str, Any]
) -> None:
    response = await _visit(client, APP + "/any/page?X-authentik-logout=true")
    assert response.status == 302
    assert "/application/o/app/end-session/?client_id=" in response.headers["Location"]
    response = await _visit(client, APP + "/?X-authentik-auth-callback=true&code=c&state=s")
    assert response.status == 302
    hop = urllib.parse.urlsplit(response.headers["Location"])
    assert (hop.netloc, hop.path) == ("app.example.com", PREFIX + "/callback")
    # the core's own pages on another host keep the query to themselves
    async with client.get(
        "/api/v3/root/config/?X-authentik-logout=true", headers={"Host": "core.example.com"}
    ) as r:
        assert r.status == 200


async def test_a_signature_in_proxy_mode_is_answered_before_the_upstream(
    api: Any, client: Any
) -> None:
    provider = await make_proxy_provider(
        api,
        "proxied",
        external_host="http://proxied.example.com",
        mode="proxy",
        internal_host="http://127.0.0.1:9",  # never reached
    )
    await _assign(api, await _embedded_outpost(api), [provider["pk"]])

    async def signed_out() -> bool:
        response = await _visit(client, "http://proxied.example.com/x?X-authentik-logout=true")
        location = str(response.headers.get("Location", ""))
        return response.status == 302 and "/end-session/?client_id=" in location

    await _within(1.0, signed_out)


# Per-Host state (no authentik_host, no public URL) --------------------------------------------


async def test_attack_cycling_host_headers_keeps_the_outposts_state_bounded(
    api: Any, client: Any, assigned: dict[str, Any]
) -> None:
    state = client.app[embedded.EMBEDDED]
    assert not state.authentik_host and not state.settings.web.public_url
    proxied = await make_proxy_provider(
        api, "proxied", external_host="http://proxied.example.com", mode="proxy"
    )
    await _assign(api, assigned["outpost"], [assigned["provider"]["pk"], proxied["pk"]])
    await _within(1.0, lambda: _true(state.has_proxied))
    made = state.made
    # the core's own routes on any host, signed or not: no outpost state at all
    for n in range(50):
        headers = {"Host": f"h{n}.example.net"}
        async with client.get("/-/health/live/?X-authentik-logout=true", headers=headers) as r:
            assert r.status == 200
    assert state.made == made
    # the outpost's endpoints on 300 hosts: at most MAX_BASES kept, nothing left to close
    for n in range(300):
        response = await _traefik(client, {"Host": f"h{n}.example.net"})
        assert response.status == 302
    assert len(state._served) <= embedded.MAX_BASES
    outposts = [served.outpost for served in state._served.values()]
    assert all(o.upstreams is state._upstreams for o in outposts)
    assert all(o.used_states is state._used_states for o in outposts)
    assert all(o.sessions is state.sessions for o in outposts)
    assert {id(o.core._session()) for o in outposts} == {id(state.http())}
    # a base seen again while kept is not made again
    made = state.made
    for _ in range(3):
        await _traefik(client, {"Host": "h299.example.net"})
    assert state.made == made


async def _true(value: Any) -> bool:
    return bool(value)
