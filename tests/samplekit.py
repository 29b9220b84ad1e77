"""What the sample relying parties of the browser tests share (the OIDC app of
`e2e/test_oidc_sample_app.py`, the SAML service providers of `samlspkit`): sessions held in
memory under a random cookie, a home page that greets the signed-in user by name or sends
the browser to `/login`, and serving the apps from a thread of their own."""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from aiohttp import web


class SignedInApp:
    """Sessions by a random value of the cookie `cookie`; `home` greets or sends to `/login`."""

    def __init__(self, cookie: str) -> None:
        self.cookie = cookie
        self.sessions: dict[str, dict[str, Any]] = {}

    def session(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        sid = request.cookies.get(self.cookie)
        if sid is None or sid not in self.sessions:
            sid = secrets.token_urlsafe(16)
            self.sessions[sid] = {}
        return sid, self.sessions[sid]

    def set_cookie(self, sid: str) -> dict[str, str]:
        """The header that gives the browser its session."""
        return {"Set-Cookie": f"{self.cookie}={sid}; Path=/"}

    async def home(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        if "username" not in data:
            raise web.HTTPFound("/login", headers=self.set_cookie(sid))
        return web.Response(
            text=f"<html><body><h1>Hello, {html.escape(data['username'])}</h1></body></html>",
            content_type="text/html",
        )


@contextlib.contextmanager
def serving(apps: list[tuple[web.Application, int]]) -> Iterator[None]:
    """Each app on its port, from an event loop in a thread of its own (the test's thread
    already runs Playwright's loop)."""
    loop = asyncio.new_event_loop()
    runners = [(web.AppRunner(app, access_log=None), port) for app, port in apps]
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        for runner, port in runners:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(timeout=10)
    yield
    for runner, _ in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
