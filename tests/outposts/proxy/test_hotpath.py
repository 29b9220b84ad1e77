"""The hot path (`outposts.proxy.hotpath`): authenticated checks answered in front of the router,
every other request answered by the application exactly as without it.

Each test serves the same outpost twice, with and without the hot path, counts the requests
that reach the application behind it, and compares the answers. No core is needed: sessions are
sealed here as the callback seals them (the outpost's core URL is a closed port, so a session it
would have to confirm is served while "the core is away", as in production)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import proxykit
import pytest
from aiohttp import web
from helpers import free_port

from tessera.outposts import proxy
from tessera.outposts.proxy import hotpath, sealing
from tessera.outposts.proxy.sessions import Session

APP = "app.example.com"
CHECK = "/outpost.goauthentik.io/auth/"
IDENTITY = ("X-authentik-username", "X-authentik-groups", "X-authentik-email", "X-authentik-uid")


def _fwd(uri: str = "/page", host: str = APP) -> dict[str, str]:
    return {"X-Forwarded-Proto": "http", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}


def _token(sid: str = "s" * 64, **claims: Any) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    body = {
        "sub": "u-1",
        "sid": sid,
        "exp": time.time() + 600,
        "iat": time.time(),
        "preferred_username": "alice",
        "email": "alice@example.com",
        "groups": ["staff"],
        **claims,
    }
    return f"{part({'alg': 'ES256'})}.{part(body)}.c2ln"


def _login(outpost: proxy.Outpost, token: str, confirmed: bool = True) -> str:
    """A session as the callback makes it: sealed into the cookie, known to the process."""
    provider = outpost.registry.lookup(APP)
    assert provider is not None
    sealed = sealing.seal(provider.session_key, provider.cookie_name, {"t": token})
    if confirmed:
        session = Session.of_token(token, proxy.oidc.unverified_claims(token))
        outpost.sessions.created(provider, sealed, session)
    return f"{provider.cookie_name}={sealed}"


class Served:
    """An outpost's application served as `tessera outpost proxy` serves it, the requests
    that reach the application (behind the hot path) counted."""

    def __init__(self, base: str, reached: list[str]) -> None:
        self.base = base
        self.reached = reached

    async def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
        async with (
            aiohttp.ClientSession() as client,
            client.get(self.base + path, allow_redirects=False, **kwargs) as response,
        ):
            return response.status, dict(response.headers), await response.text()


@asynccontextmanager
async def serving(
    outpost: proxy.Outpost, hot: bool = True, pick: Callable[[Any], Any] | None = None
) -> AsyncIterator[Served]:
    runner = web.AppRunner(proxy.create_app(outpost, owned=False), access_log=None)
    await runner.setup()
    assert runner.server is not None
    reached: list[str] = []
    application = runner.server.request_handler

    async def counted(request: web.BaseRequest) -> web.StreamResponse:
        reached.append(request.path)
        return await application(request)

    runner.server.request_handler = counted
    if hot:
        hotpath.install(runner.server, pick or (lambda _request: outpost))
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(f"http://127.0.0.1:{port}", reached)
    finally:
        await runner.cleanup()


@pytest.fixture
async def outpost() -> AsyncIterator[proxy.Outpost]:
    instance = proxykit.outpost(
        [
            proxykit.config(external_host=f"http://{APP}", client_id="single"),
            proxykit.config(
                external_host="http://skip.example.com",
                client_id="skipping",
                slug="skip",
                skip_path_regex="^/public/.*",
            ),
        ]
    )
    yield instance
    await instance.close()


async def test_an_authenticated_check_never_reaches_the_application(
    outpost: proxy.Outpost,
) -> None:
    cookie = _login(outpost, _token())
    counted: list[str] = []
    outpost.observe = counted.append
    async with serving(outpost) as served:
        for kind in ("traefik", "caddy", "nginx", "envoy/page"):
            headers = {**_fwd(), "Cookie": cookie}
            if kind == "nginx":
                headers = {"X-Original-URL": f"http://{APP}/page", "Cookie": cookie}
            if kind.startswith("envoy"):
                headers = {"Host": APP, "Cookie": cookie}  # Envoy: the path after its own
            status, answer, _ = await served.get(CHECK + kind, headers=headers)
            assert status == 200, kind
            assert answer["X-authentik-username"] == "alice"
            assert answer["X-authentik-groups"] == "staff"
        assert served.reached == []
    assert counted == ["authenticated"] * 4


def _cases(outpost: proxy.Outpost) -> list[tuple[str, dict[str, str], str]]:
    """(name, headers, path) of checks that are not simply authenticated, and one that is."""
    good = _login(outpost, _token())
    unconfirmed = _login(outpost, _token(sid="u" * 64, sub="u-2"), confirmed=False)
    ended = _login(outpost, _token(sid="e" * 64, sub="u-3"))
    outpost.session_ended("e" * 64)
    expired = _login(outpost, _token(sid="x" * 64, exp=time.time() - 5))
    leaving = _login(outpost, _token(sid="l" * 64, sub="u-4"))  # its logout ends it
    traefik = CHECK + "traefik"
    return [
        ("authenticated", {**_fwd(), "Cookie": good}, traefik),
        ("no cookie", _fwd(), traefik),
        ("no cookie, script", {**_fwd(), "Accept": "application/json"}, traefik),
        ("garbage cookie", {**_fwd(), "Cookie": good.split("=")[0] + "=AAAA"}, traefik),
        ("ended session", {**_fwd(), "Cookie": ended}, traefik),
        ("expired session", {**_fwd(), "Cookie": expired}, traefik),
        ("unconfirmed session", {**_fwd(), "Cookie": unconfirmed}, traefik),
        ("unknown host", {**_fwd(host="nowhere.org"), "Cookie": good}, traefik),
        ("bad forwarded uri", {**_fwd(uri="//evil.com/"), "Cookie": good}, traefik),
        ("bad proto", {**_fwd(), "X-Forwarded-Proto": "file", "Cookie": good}, traefik),
        ("own page", {**_fwd(uri="/outpost.goauthentik.io/ping"), "Cookie": good}, traefik),
        (
            "callback signature",
            {**_fwd(uri="/x?X-authentik-auth-callback=true&code=c&state=s"), "Cookie": good},
            traefik,
        ),
        ("logout", {**_fwd(uri="/x?X-authentik-logout=true"), "Cookie": leaving}, traefik),
        ("skipped path", _fwd(uri="/public/a", host="skip.example.com"), traefik),
        ("nginx, no cookie", {"X-Original-URL": f"http://{APP}/page"}, CHECK + "nginx"),
        ("envoy", {"Host": APP, "Cookie": good}, CHECK + "envoy/page"),
        ("envoy, no cookie", {"Host": APP}, CHECK + "envoy/page"),
        ("envoy, own page", {"Host": APP, "Cookie": good}, CHECK + "envoy/outpost.goauthentik.io"),
        ("envoy, not a check", {"Host": APP, "Cookie": good}, CHECK + "envoyx"),
    ]


def _comparable(status: int, headers: dict[str, str]) -> tuple[Any, ...]:
    location = headers.get("Location", "")
    # a login redirect carries a fresh state each time; its target is what must agree
    location = location.split("?", 1)[0] if "/start" not in location else location
    return (status, location, tuple(headers.get(name) for name in IDENTITY))


async def test_every_other_check_is_the_applications_and_answered_as_without_the_hot_path(
    outpost: proxy.Outpost,
) -> None:
    cases = _cases(outpost)
    answers: dict[bool, list[tuple[Any, ...]]] = {}
    reached: dict[bool, list[str]] = {}
    for hot in (True, False):
        async with serving(outpost, hot=hot) as served:
            answers[hot] = []
            for _name, headers, path in cases:
                status, answer, _ = await served.get(path, headers=headers)
                assert status < 500
                answers[hot].append(_comparable(status, answer))
            reached[hot] = served.reached
    for (name, _, _), with_hot, without in zip(cases, answers[True], answers[False], strict=True):
        assert with_hot == without, name
    assert answers[True][0][0] == 200
    # everything but the authenticated checks went the application's way
    hot = {"authenticated", "envoy"}
    assert reached[True] == [path for name, _, path in cases if name not in hot]
    assert len(reached[False]) == len(cases)


async def test_a_session_to_confirm_goes_to_the_application_once(outpost: proxy.Outpost) -> None:
    cookie = _login(outpost, _token())
    async with serving(outpost) as served:
        headers = {**_fwd(), "Cookie": cookie}
        assert (await served.get(CHECK + "traefik", headers=headers))[0] == 200
        assert served.reached == []
        outpost.reconnected()  # the control channel reconnected: messages may have been missed
        assert (await served.get(CHECK + "traefik", headers=headers))[0] == 200
        assert served.reached == [CHECK + "traefik"]  # the application asked the core (away)
        assert (await served.get(CHECK + "traefik", headers=headers))[0] == 200
        assert served.reached == [CHECK + "traefik"]  # not asked again before RECHECK


async def test_an_ended_session_is_refused_at_once(outpost: proxy.Outpost) -> None:
    cookie = _login(outpost, _token(sid="f" * 64))
    async with serving(outpost) as served:
        headers = {**_fwd(), "Cookie": cookie}
        assert (await served.get(CHECK + "traefik", headers=headers))[0] == 200
        outpost.session_ended("f" * 64)
        status, answer, _ = await served.get(CHECK + "traefik", headers=headers)
        assert status == 302 and "/outpost.goauthentik.io/start" in answer["Location"]
        status, _, _ = await served.get(
            CHECK + "nginx", headers={**headers, "X-Original-URL": f"http://{APP}/"}
        )
        assert status == 401


async def test_attack_forwarded_headers_from_an_untrusted_peer_never_take_the_hot_path() -> None:
    options = proxy.Options(
        outpost_name="o", version="v", core_host="http://127.0.0.1:9", trusted_proxies=()
    )
    untrusting = proxy.Outpost(options)
    untrusting.update([proxykit.config(external_host=f"http://{APP}")])
    cookie = _login(untrusting, _token())
    async with serving(untrusting) as served:
        status, _, body = await served.get(CHECK + "traefik", headers={**_fwd(), "Cookie": cookie})
        assert status == 400 and "trusted proxy" in body
        assert served.reached == [CHECK + "traefik"]
    await untrusting.close()


async def test_a_failure_in_the_hot_path_leaves_the_answer_to_the_application(
    outpost: proxy.Outpost,
) -> None:
    cookie = _login(outpost, _token())

    def broken(_request: Any) -> proxy.Outpost:
        raise RuntimeError("a bug")

    async with serving(outpost, pick=broken) as served:
        status, answer, _ = await served.get(
            CHECK + "traefik", headers={**_fwd(), "Cookie": cookie}
        )
        assert status == 200 and answer["X-authentik-username"] == "alice"
        assert served.reached == [CHECK + "traefik"]
