"""A tiny web application signs its users in through Tessera: an aiohttp app on a free port using
authlib's client (code flow, PKCE S256, nonce, ID token checked with joserfc against the JWKS).
Chromium opens the app, is sent to Tessera, logs in, consents, comes back and is greeted by name."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
import requests
from aiohttp import web
from authlib.integrations.requests_client import OAuth2Session
from helpers import Server, free_port
from joserfc import jwt
from joserfc.jwk import KeySet
from oidckit import EXPLICIT, keypair, make_client, requires_provider, server_fixture, sign_in_until
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from samplekit import SignedInApp, serving

pytestmark = requires_provider


class SampleApp(SignedInApp):
    """The relying party: sessions in memory, keyed by a random cookie."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, port: int) -> None:
        super().__init__("sample")
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.config = requests.get(issuer + ".well-known/openid-configuration", timeout=10).json()
        self.keys = KeySet.import_key_set(requests.get(self.config["jwks_uri"], timeout=10).json())

    def oauth(self) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            scope="openid profile email",
            redirect_uri=self.url + "/callback",
            code_challenge_method="S256",
        )

    async def login(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        data["verifier"], data["nonce"] = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, data["state"] = self.oauth().create_authorization_url(
            self.config["authorization_endpoint"],
            code_verifier=data["verifier"],
            nonce=data["nonce"],
        )
        raise web.HTTPFound(url, headers=self.set_cookie(sid))

    async def callback(self, request: web.Request) -> web.Response:
        _, data = self.session(request)
        if request.query.get("state") != data.get("state"):
            raise web.HTTPBadRequest(text="state mismatch")
        session = self.oauth()
        token = await asyncio.to_thread(
            session.fetch_token,
            self.config["token_endpoint"],
            authorization_response=str(request.url),
            code_verifier=data["verifier"],
            state=data["state"],
        )
        decoded = jwt.decode(token["id_token"], self.keys)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": data["nonce"]},
            exp={"essential": True},
        ).validate(decoded.claims)
        session.token = token
        info = await asyncio.to_thread(session.get, self.config["userinfo_endpoint"])
        assert info.json()["sub"] == decoded.claims["sub"]
        data["username"] = info.json()["preferred_username"]
        raise web.HTTPFound("/")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture
def sample(server: Server) -> Iterator[SampleApp]:
    port = free_port()
    client = make_client(
        server,
        "sample-app",
        signing_key=keypair(server, "sample-app", "ecdsa"),
        redirect_uri=f"http://127.0.0.1:{port}/callback",
        logout_uri=f"http://127.0.0.1:{port}/",
        flow=EXPLICIT,
    )
    app = SampleApp(client.issuer(server), client.client_id, client.client_secret, port)
    web_app = web.Application()
    web_app.router.add_get("/", app.home)
    web_app.router.add_get("/login", app.login)
    web_app.router.add_get("/callback", app.callback)
    with serving([(web_app, port)]):
        yield app


def test_sample_app_greets_the_user(browser: Browser, server: Server, sample: SampleApp) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(sample.url + "/")
    assert page.url.startswith(server.url)  # sent to Tessera to sign in

    def greeted() -> bool:
        if page.url != sample.url + "/":
            return False
        try:
            return "Hello, akadmin" in page.content()
        except PlaywrightError:  # still navigating
            return False

    sign_in_until(page, greeted)
    assert page.locator("h1").inner_text() == "Hello, akadmin"
    context.close()
