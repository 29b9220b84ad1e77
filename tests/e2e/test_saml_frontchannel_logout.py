"""IdP-initiated front-channel Single Logout in a real browser: three tiny service providers on
python3-saml (OneLogin's toolkit), two with `logout_method` `frontchannel_iframe` (SLS by
HTTP-Redirect and by HTTP-POST), one with `frontchannel_native`. Chromium signs in to all three,
then runs Tessera's logout flow: the flow page loads the iframe SPs' LogoutRequests in hidden
frames, then sends the browser to the native SP, whose LogoutResponse brings it back to the
flow, which ends. Each SP checks the request it got
(signature, NameID, SessionIndex) with its own toolkit and drops its session."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from aiohttp import web
from helpers import Server, free_port
from lxml import etree
from oidckit import INVALIDATION, server_fixture, sign_in_until
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from playwright.sync_api import Browser
from samlkit import rsa_pair
from samlspkit import POST, REDIRECT, SHA256, SampleSP, greets, mapping_pks, register, serving

EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


class LogoutSP(SampleSP):
    """A sample service provider with a Single Logout endpoint (`/sls`)."""

    security: ClassVar[dict[str, Any]] = {
        "authnRequestsSigned": True,
        "logoutResponseSigned": True,
        "wantAssertionsSigned": True,
        "wantMessagesSigned": True,  # the IdP's LogoutRequest must be signed
        **SHA256,
    }

    def __init__(self, name: str, port: int, key: str, cert: str, binding: str) -> None:
        super().__init__(name, port, key, cert)
        self.binding = binding  # of the SP's SLS endpoint: "redirect" or "post"
        self.logouts: list[dict[str, Any]] = []  # each LogoutRequest received, as checked

    def sp_settings(self) -> dict[str, Any]:
        return {
            **super().sp_settings(),
            "singleLogoutService": {
                "url": self.url + "/sls",
                "binding": POST if self.binding == "post" else REDIRECT,
            },
            "NameIDFormat": EMAIL,
        }

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/sls", self.sls)
        app.router.add_post("/sls", self.sls_post)
        return app

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture
def sps(server: Server) -> Iterator[tuple[LogoutSP, LogoutSP, LogoutSP]]:
    pks = mapping_pks(server)
    made = []
    for name, method, binding in (
        ("frame-sp", "frontchannel_iframe", "redirect"),
        ("post-frame-sp", "frontchannel_iframe", "post"),
        ("native-sp", "frontchannel_native", "redirect"),
    ):
        key, cert = rsa_pair(name)
        sp = LogoutSP(name, free_port(), key, cert, binding)
        register(
            server,
            sp,
            pks,
            sls_url=sp.url + "/sls",
            sls_binding=sp.binding,
            logout_method=method,
            sign_logout_request=True,
            sign_response=True,
        )
        made.append(sp)
    with serving(*made):
        yield made[0], made[1], made[2]


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
    sign_in_until(page, greets(page, frame_sp))
    for sp in (post_sp, native_sp):  # signed in at the IdP already: straight back
        page.goto(sp.url + "/")
        _wait(greets(page, sp))
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
