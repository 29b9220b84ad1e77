"""IdP-initiated front-channel Single Logout in a real browser: three tiny service providers on
python3-saml (OneLogin's toolkit), two with `logout_method` `frontchannel_iframe` (SLS by
HTTP-Redirect and by HTTP-POST), one with `frontchannel_native`. Chromium signs in to all three,
then runs Tessera's logout flow: the flow page loads the iframe SPs' LogoutRequests in hidden
frames, then sends the browser to the native SP, whose LogoutResponse brings it back to the
flow, which ends. Each SP checks the request it got
(signature, NameID, SessionIndex) with its own toolkit and drops its session."""

from __future__ import annotations

import asyncio
import base64
import html
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, Server, free_port
from lxml import etree
from oidckit import IMPLICIT, INVALIDATION, admin, flow_pk, keypair, server_fixture, sign_in_until
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from samlkit import rsa_pair

USERNAME = "http://schemas.goauthentik.io/2021/02/saml/username"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


class LogoutSP:
    """A service provider with sessions in memory and a Single Logout endpoint (`/sls`)."""

    def __init__(self, name: str, port: int, key: str, cert: str, binding: str) -> None:
        self.name = name
        self.binding = binding  # of the SP's SLS endpoint: "redirect" or "post"
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.key, self.cert = key, cert
        self.sessions: dict[str, dict[str, Any]] = {}
        self.logouts: list[dict[str, Any]] = []  # each LogoutRequest received, as checked
        self.settings: dict[str, Any] = {}

    def configure(self, idp_metadata: str) -> None:
        self.settings = {
            "strict": True,
            "sp": {
                "entityId": self.url + "/metadata",
                "assertionConsumerService": {"url": self.url + "/acs", "binding": POST},
                "singleLogoutService": {
                    "url": self.url + "/sls",
                    "binding": POST if self.binding == "post" else REDIRECT,
                },
                "NameIDFormat": EMAIL,
                "x509cert": self.cert,
                "privateKey": self.key,
            },
            "idp": OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"],
            "security": {
                "authnRequestsSigned": True,
                "logoutResponseSigned": True,
                "wantAssertionsSigned": True,
                "wantMessagesSigned": True,  # the IdP's LogoutRequest must be signed
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
        sid = request.cookies.get(self.name)
        if sid is None or sid not in self.sessions:
            sid = secrets.token_urlsafe(16)
            self.sessions[sid] = {}
        return sid, self.sessions[sid]

    async def home(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        if "username" not in data:
            raise web.HTTPFound("/login", headers={"Set-Cookie": f"{self.name}={sid}; Path=/"})
        return web.Response(
            text=f"<html><body><h1>Hello, {html.escape(data['username'])}</h1></body></html>",
            content_type="text/html",
        )

    async def login(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        auth = self._auth(request)
        location = auth.login(return_to=self.url + "/")
        data["request_id"] = auth.get_last_request_id()
        raise web.HTTPFound(location, headers={"Set-Cookie": f"{self.name}={sid}; Path=/"})

    async def acs(self, request: web.Request) -> web.Response:
        _, data = self.session(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        auth = self._auth(request, form)
        auth.process_response(request_id=data.get("request_id"))
        if auth.get_errors() or not auth.is_authenticated():
            raise web.HTTPForbidden(text=f"SAML refused: {auth.get_last_error_reason()}")
        data["username"] = auth.get_attribute(USERNAME)[0]
        data["name_id"] = auth.get_nameid()
        data["session_index"] = auth.get_session_index()
        raise web.HTTPFound("/")

    async def sls(self, request: web.Request) -> web.Response:
        """The IdP's LogoutRequest (HTTP-Redirect): checked by the toolkit, which answers with a
        signed LogoutResponse to the IdP's SLO endpoint; the SP's sessions of that user end."""
        auth = self._auth(request)
        target = auth.process_slo(keep_local_session=True)
        record: dict[str, Any] = {"errors": auth.get_errors()}
        if not record["errors"]:
            xml = auth.get_last_request_xml()
            record["name_id"] = OneLogin_Saml2_Logout_Request.get_nameid(xml)
            record["session_index"] = OneLogin_Saml2_Logout_Request.get_session_indexes(xml)
            for sid, data in list(self.sessions.items()):
                if data.get("session_index") in record["session_index"]:
                    del self.sessions[sid]
        record["reason"] = auth.get_last_error_reason()
        self.logouts.append(record)
        if target is None:
            return web.Response(text="refused", status=400)
        raise web.HTTPFound(target)

    async def sls_post(self, request: web.Request) -> web.Response:
        """The IdP's LogoutRequest by HTTP-POST (in a hidden frame): its enveloped signature
        checked with the IdP's certificate from the metadata by the toolkit's xmlsec check."""
        form = await request.post()
        xml = base64.b64decode(str(form["SAMLRequest"]))
        record: dict[str, Any] = {"errors": [], "reason": ""}
        signed = OneLogin_Saml2_Utils.validate_sign(
            xml, cert=self.settings["idp"]["x509cert"], xpath="/samlp:LogoutRequest/ds:Signature"
        )
        if not signed:
            record["errors"].append("invalid_logout_request_signature")
        if OneLogin_Saml2_Logout_Request.get_id(xml) is None:
            record["errors"].append("no_id")
        record["destination"] = etree.fromstring(xml).get("Destination")
        record["name_id"] = OneLogin_Saml2_Logout_Request.get_nameid(xml)
        record["session_index"] = OneLogin_Saml2_Logout_Request.get_session_indexes(xml)
        for sid, data in list(self.sessions.items()):
            if data.get("session_index") in record["session_index"]:
                del self.sessions[sid]
        self.logouts.append(record)
        return web.Response(text="<html><body>Signed out</body></html>", content_type="text/html")


def _provider(server: Server, sp: LogoutSP, method: str, mappings: list[str]) -> None:
    sp_pair = admin(
        server,
        "POST",
        "crypto/certificatekeypairs/",
        {"name": sp.name, "certificate_data": sp.cert, "key_data": ""},
    )["pk"]
    provider = admin(
        server,
        "POST",
        "providers/saml/",
        {
            "name": sp.name,
            "authorization_flow": flow_pk(server, IMPLICIT),
            "invalidation_flow": flow_pk(server, INVALIDATION),
            "acs_url": sp.url + "/acs",
            "sls_url": sp.url + "/sls",
            "sls_binding": sp.binding,
            "logout_method": method,
            "audience": sp.url + "/metadata",
            "signing_kp": keypair(server, f"{sp.name}-idp", "rsa"),
            "verification_kp": sp_pair,
            "sign_logout_request": True,
            "sign_response": True,
            "property_mappings": mappings,
        },
    )
    admin(
        server,
        "POST",
        "core/applications/",
        {"name": sp.name, "slug": sp.name, "provider": provider["pk"]},
    )
    metadata = requests.get(f"{server.url}/application/saml/{sp.name}/metadata/", timeout=10)
    sp.configure(metadata.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture
def sps(server: Server) -> Iterator[tuple[LogoutSP, LogoutSP, LogoutSP]]:
    status, mappings = server.request(
        "GET", "/api/v3/propertymappings/provider/saml/?page_size=100", BOOTSTRAP_TOKEN
    )
    assert status == 200, mappings
    pks = [m["pk"] for m in mappings["results"]]
    made = []
    for name, method, binding in (
        ("frame-sp", "frontchannel_iframe", "redirect"),
        ("post-frame-sp", "frontchannel_iframe", "post"),
        ("native-sp", "frontchannel_native", "redirect"),
    ):
        key, cert = rsa_pair(name)
        sp = LogoutSP(name, free_port(), key, cert, binding)
        _provider(server, sp, method, pks)
        made.append(sp)
    # The SPs' loop runs in its own thread: this one already runs Playwright's.
    loop = asyncio.new_event_loop()
    runners = []
    for sp in made:
        app = web.Application()
        app.router.add_get("/", sp.home)
        app.router.add_get("/login", sp.login)
        app.router.add_post("/acs", sp.acs)
        app.router.add_get("/sls", sp.sls)
        app.router.add_post("/sls", sp.sls_post)
        runners.append((web.AppRunner(app, access_log=None), sp.port))
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
    yield made[0], made[1], made[2]
    for runner, _ in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def _greets(page: Any, sp: LogoutSP) -> Any:
    def greeted() -> bool:
        if page.url != sp.url + "/":
            return False
        try:
            return "Hello, akadmin" in page.content()
        except PlaywrightError:  # still navigating
            return False

    return greeted


def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_logout_at_the_idp_tells_every_sp(
    browser: Browser, server: Server, sps: tuple[LogoutSP, LogoutSP, LogoutSP]
) -> None:
    frame_sp, post_sp, native_sp = sps
    context = browser.new_context()
    page = context.new_page()
    page.goto(frame_sp.url + "/")
    sign_in_until(page, _greets(page, frame_sp))
    for sp in (post_sp, native_sp):  # signed in at the IdP already: straight back
        page.goto(sp.url + "/")
        _wait(_greets(page, sp))
    given = {sp.name: next(iter(sp.sessions.values())) for sp in sps}

    page.goto(f"{server.url}/if/flow/{INVALIDATION}/")
    _wait(lambda: all(len(sp.logouts) == 1 for sp in sps))
    # Back from the native SP through slo/ to the flow, which ends (no error page on the way).
    _wait(lambda: page.url.startswith(server.url) and "/sls" not in page.url)
    page.wait_for_load_state()
    assert "Request refused" not in page.content()
    for sp in sps:
        (record,) = sp.logouts
        assert record["errors"] == [], (sp.name, record["reason"])
        assert record["name_id"] == given[sp.name]["name_id"]
        assert record["session_index"] == [given[sp.name]["session_index"]]
        assert not sp.sessions  # the SP ended its session
    assert post_sp.logouts[0]["destination"] == post_sp.url + "/sls"
    # The core session is gone: the portal asks to log in again.
    page.goto(f"{server.url}/if/user/")
    assert "/if/flow/" in page.url
    context.close()
