"""What the sample relying parties of the browser tests share (the OIDC app of
`e2e/test_oidc_sample_app.py`, the SAML service providers of `samlspkit`): sessions held in
memory under a random cookie, and a home page that greets the signed-in user by name or sends
the browser to `/login`."""

from __future__ import annotations

import html
import secrets
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
