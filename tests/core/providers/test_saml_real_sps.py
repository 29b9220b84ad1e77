"""Tessera's SAML IdP against service providers nobody here wrote: pysaml2 and python3-saml
(OneLogin's toolkit) each load Tessera's metadata, send signed AuthnRequests over both bindings,
and validate the signed (and encrypted) Response and read its attributes."""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from oauth2kit import login
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from samlkit import (
    ACS,
    SLS,
    SP_ENTITY,
    follow,
    form_of,
    get_raw,
    idp_metadata,
    import_pair,
    make_saml_provider,
    onelogin_request,
    onelogin_settings,
    rsa_pair,
)

USERNAME = "http://schemas.goauthentik.io/2021/02/saml/username"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
GROUPS = "http://schemas.xmlsoap.org/claims/Group"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _provider(api: Any, sp_cert: str, *, encrypt: bool) -> dict[str, Any]:
    verification = await import_pair(api, "sp-signing", sp_cert)
    fields: dict[str, Any] = {"verification_kp": verification, "sign_response": True}
    if encrypt:
        fields["encryption_kp"] = verification
    return await make_saml_provider(api, "wiki", **fields)


def _pysaml2(tmp_path: Path, idp_metadata: str, key: str, cert: str) -> Saml2Client:
    (tmp_path / "sp.key").write_text(key)
    (tmp_path / "sp.crt").write_text(cert)
    config = {
        "entityid": SP_ENTITY,
        "service": {
            "sp": {
                "endpoints": {
                    "assertion_consumer_service": [(ACS, BINDING_HTTP_POST)],
                    "single_logout_service": [(SLS, BINDING_HTTP_REDIRECT)],
                },
                "authn_requests_signed": True,
                "want_assertions_signed": True,
                "want_response_signed": True,
                "allow_unsolicited": False,
            }
        },
        "metadata": {"inline": [idp_metadata]},
        "key_file": str(tmp_path / "sp.key"),
        "cert_file": str(tmp_path / "sp.crt"),
        "encryption_keypairs": [
            {"key_file": str(tmp_path / "sp.key"), "cert_file": str(tmp_path / "sp.crt")}
        ],
        "allow_unknown_attributes": True,
    }
    sp_config = SPConfig()
    sp_config.load(config)
    return Saml2Client(config=sp_config)


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


_INPUT = re.compile(r'name="(SAMLRequest|RelayState)" value="([^"]*)"')


@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
@pytest.mark.parametrize(
    "binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST], ids=["redirect", "post"]
)
async def test_pysaml2(client: Any, api: Any, tmp_path: Path, binding: str, encrypt: bool) -> None:
    key, cert = rsa_pair("pysaml2-sp")
    await _provider(api, cert, encrypt=encrypt)
    sp = _pysaml2(tmp_path, await idp_metadata(client), key, cert)
    idp = next(iter(sp.metadata.identity_providers()))
    await login(client)
    request_id, info = sp.prepare_for_authenticate(
        entityid=idp,
        relay_state="/after",
        binding=binding,
        nameid_format=EMAIL_FORMAT,
        sign=True,
        sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        digest_alg="http://www.w3.org/2001/04/xmlenc#sha256",
    )
    if binding == BINDING_HTTP_REDIRECT:
        location = dict(info["headers"])["Location"]
        response = await get_raw(client, _path(location))
    else:
        fields = {k: html.unescape(v) for k, v in _INPUT.findall(info["data"])}
        response = await client.post(_path(info["url"]), data=fields, allow_redirects=False)
    page = await follow(client, response)
    assert page.status == 200, await page.text()
    action, fields = form_of(await page.text())
    assert action == ACS and fields["RelayState"] == "/after"
    if encrypt:
        assert b"EncryptedAssertion" in base64.b64decode(fields["SAMLResponse"])
    answer = sp.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/after"}
    )
    assert answer is not None
    assert answer.name_id.text == "root@example.com"
    assert answer.name_id.format == EMAIL_FORMAT
    assert answer.ava[USERNAME] == ["akadmin"]
    assert answer.ava[EMAIL] == ["root@example.com"]
    assert answer.in_response_to == request_id


@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
async def test_python3_saml(client: Any, api: Any, encrypt: bool) -> None:
    key, cert = rsa_pair("onelogin-sp")
    await _provider(api, cert, encrypt=encrypt)
    settings = onelogin_settings(await idp_metadata(client), key, cert)
    settings["security"]["wantAssertionsEncrypted"] = encrypt
    auth = OneLogin_Saml2_Auth(onelogin_request(), settings)
    location = auth.login(return_to="/after")  # HTTP-Redirect binding, signed query
    request_id = auth.get_last_request_id()
    await login(client)
    page = await follow(client, await get_raw(client, _path(location)))
    assert page.status == 200, await page.text()
    action, fields = form_of(await page.text())
    assert action == ACS
    auth = OneLogin_Saml2_Auth(onelogin_request(fields), settings)
    auth.process_response(request_id=request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    assert auth.get_nameid() == "root@example.com"
    assert auth.get_attribute(USERNAME) == ["akadmin"]
    assert auth.get_last_assertion_id()
