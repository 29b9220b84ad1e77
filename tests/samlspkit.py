"""A sample SAML service provider for the browser tests: a tiny aiohttp application on python3-saml
(OneLogin's toolkit), registered with Tessera as a SAML provider and its application, and served
from a thread of its own while the test's thread drives Chromium.

`SampleSP` signs its users in (`/login` sends the AuthnRequest, `/acs` checks the Response and
keeps the username, NameID and SessionIndex in a session held in memory, `/` greets the user);
a test subclasses it for more endpoints (front-channel logout adds `/sls`). `register` makes
the IdP side, `serving` runs the SPs, `greets` says when a page shows an SP's greeting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import requests
import samplekit
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, Server
from oidckit import IMPLICIT, INVALIDATION, admin, flow_pk, keypair
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from playwright.sync_api import Error as PlaywrightError
from samplekit import SignedInApp

USERNAME = "http://schemas.goauthentik.io/2021/02/saml/username"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SHA256 = {
    "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
}


class SampleSP(SignedInApp):
    """The service provider: sessions in memory, keyed by a random cookie named after the SP.
    Its toolkit settings (`settings`) are made by `configure` from the IdP's metadata."""

    # What the toolkit demands of the IdP and signs itself (its `security` settings); it wants
    # encrypted assertions, so `register` it with `encrypt=True`.
    security: ClassVar[dict[str, Any]] = {
        "authnRequestsSigned": True,
        "wantAssertionsSigned": True,
        "wantAssertionsEncrypted": True,
        **SHA256,
    }

    def __init__(self, name: str, port: int, key: str, cert: str) -> None:
        super().__init__(name)
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.key, self.cert = key, cert
        self.settings: dict[str, Any] = {}

    def sp_settings(self) -> dict[str, Any]:
        return {
            "entityId": self.url + "/metadata",
            "assertionConsumerService": {"url": self.url + "/acs", "binding": POST},
            "x509cert": self.cert,
            "privateKey": self.key,
        }

    def configure(self, idp_metadata: str) -> None:
        self.settings = {
            "strict": True,
            "sp": self.sp_settings(),
            "idp": OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"],
            "security": dict(self.security),
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get("/login", self.login)
        app.router.add_post("/acs", self.acs)
        return app

    def _auth(self, request: web.Request, post: dict[str, str] | None = None) -> Any:
        data = {
            "https": "off",
            "http_host": f"127.0.0.1:{self.port}",
            "script_name": request.path,
            "get_data": dict(request.query),
            "post_data": post or {},
        }
        return OneLogin_Saml2_Auth(data, self.settings)

    async def login(self, request: web.Request) -> web.Response:
        sid, data = self.session(request)
        auth = self._auth(request)
        location = auth.login(return_to=self.url + "/")
        data["request_id"] = auth.get_last_request_id()
        raise web.HTTPFound(location, headers=self.set_cookie(sid))

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


def mapping_pks(server: Server) -> list[str]:
    """Every SAML property mapping's pk (the system ones: the username attribute among them)."""
    status, mappings = server.request(
        "GET", "/api/v3/propertymappings/provider/saml/?page_size=100", BOOTSTRAP_TOKEN
    )
    assert status == 200, mappings
    return [m["pk"] for m in mappings["results"]]


def register(
    server: Server, sp: SampleSP, mappings: list[str], encrypt: bool = False, **fields: Any
) -> None:
    """`sp` as a SAML provider (verifying with its certificate, signing with a fresh IdP key,
    encrypting to its certificate if `encrypt`, plus `fields`) and an application slugged by
    its name; then `sp` configured with the application's IdP metadata."""
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
            "audience": sp.url + "/metadata",
            "signing_kp": keypair(server, f"{sp.name}-idp", "rsa"),
            "verification_kp": sp_pair,
            "property_mappings": mappings,
            **({"encryption_kp": sp_pair} if encrypt else {}),
            **fields,
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


@contextlib.contextmanager
def serving(*sps: SampleSP) -> Iterator[None]:
    """Each SP's app on its port, from a thread of its own (`samplekit.serving`)."""
    with samplekit.serving([(sp.app(), sp.port) for sp in sps]):
        yield


def greets(page: Any, sp: SampleSP) -> Callable[[], bool]:
    """Whether `page` shows `sp`'s greeting of akadmin (false while it is still navigating)."""

    def greeted() -> bool:
        if page.url != sp.url + "/":
            return False
        try:
            return "Hello, akadmin" in page.content()
        except PlaywrightError:  # still navigating
            return False

    return greeted
