"""A tiny web application signs its users in through Tessera's SAML IdP: an aiohttp app on a free
port using python3-saml (OneLogin's toolkit) as the service provider, with Tessera's metadata,
signed AuthnRequests and signed, encrypted Responses. Chromium opens the app, is sent to Tessera,
logs in, is posted back by the autosubmit form and is greeted by the username attribute."""

from __future__ import annotations

import asyncio
import html
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, Server, free_port
from oidckit import IMPLICIT, INVALIDATION, admin, flow_pk, keypair, server_fixture, sign_in_until
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from samlkit import rsa_pair

USERNAME = "http://schemas.goauthentik.io/2021/02/saml/username"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


class SampleSP:
    """The service provider: sessions in memory, keyed by a random cookie."""

    def __init__(self, idp_metadata: str, port: int, key: str, cert: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.sessions: dict[str, dict[str, Any]] = {}
        self.settings = {
            "strict": True,
            "sp": {
                "entityId": self.url + "/metadata",
                "assertionConsumerService": {"url": self.url + "/acs", "binding": POST},
                "x509cert": cert,
                "privateKey": key,
            },
            "idp": OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"],
            "security": {
                "authnRequestsSigned": True,
                "wantAssertionsSigned": True,
                "wantAssertionsEncrypted": True,
                "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
            },
        }

    def _auth(self, request: web.Request, post: dict[str, str] | None = None) -> Any:
        data = {
            "https": "off",
            "http_host": f"127.0.0.1:{self.port}",
            "script_name": request.path,
            "get_data": dict(request.query),
            "post_data": post or {},
        }
        return OneLogin_Saml2_Auth(data, self.settings)

    def session(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        sid = request.cookies.get("sample")
        if sid is None or sid not in self.sessions:
            sid = secrets.token_urlsafe(16)
            self.sessions[sid] = {}
        return sid, self.sessions[sid]

    async def home(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        if "username" not in data:
            raise web.HTTPFound("/login", headers={"Set-Cookie": f"sample={sid}; Path=/"})
        return web.Response(
            text=f"<html><body><h1>Hello, {html.escape(data['username'])}</h1></body></html>",
            content_type="text/html",
        )

    async def login(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        auth = self._auth(request)
        location = auth.login(return_to=self.url + "/")
        data["request_id"] = auth.get_last_request_id()
        raise web.HTTPFound(location, headers={"Set-Cookie": f"sample={sid}; Path=/"})

    async def acs(self, request: web.Request) -> web.Response:
        _, data = self.session(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        auth = self._auth(request, form)
        auth.process_response(request_id=data.get("request_id"))
        if auth.get_errors() or not auth.is_authenticated():
            raise web.HTTPForbidden(text=f"SAML refused: {auth.get_last_error_reason()}")
        data["username"] = auth.get_attribute(USERNAME)[0]
        raise web.HTTPFound("/")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture
def sample(server: Server) -> Iterator[SampleSP]:
    port = free_port()
    key, cert = rsa_pair("sample-sp")
    sp_pair = admin(
        server,
        "POST",
        "crypto/certificatekeypairs/",
        {"name": "sample-sp", "certificate_data": cert, "key_data": ""},
    )["pk"]
    status, mappings = server.request(
        "GET", "/api/v3/propertymappings/provider/saml/?page_size=100", BOOTSTRAP_TOKEN
    )
    assert status == 200, mappings
    provider = admin(
        server,
        "POST",
        "providers/saml/",
        {
            "name": "sample-sp",
            "authorization_flow": flow_pk(server, IMPLICIT),
            "invalidation_flow": flow_pk(server, INVALIDATION),
            "acs_url": f"http://127.0.0.1:{port}/acs",
            "audience": f"http://127.0.0.1:{port}/metadata",
            "signing_kp": keypair(server, "sample-idp", "rsa"),
            "verification_kp": sp_pair,
            "encryption_kp": sp_pair,
            "property_mappings": [m["pk"] for m in mappings["results"]],
        },
    )
    admin(
        server,
        "POST",
        "core/applications/",
        {"name": "sample-sp", "slug": "sample-sp", "provider": provider["pk"]},
    )
    metadata = requests.get(server.url + "/application/saml/sample-sp/metadata/", timeout=10).text
    app = SampleSP(metadata, port, key, cert)
    web_app = web.Application()
    web_app.router.add_get("/", app.home)
    web_app.router.add_get("/login", app.login)
    web_app.router.add_post("/acs", app.acs)
    # The app's loop runs in its own thread: this one already runs Playwright's.
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(web_app, access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(timeout=10)
    yield app
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def test_sample_sp_greets_the_user(browser: Browser, server: Server, sample: SampleSP) -> None:
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
