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


def _name_id(root: Any) -> Any:
    return root.find(f".//{{{SAML}}}Subject/{{{SAML}}}NameID")


def _status(root: Any) -> list[str]:
    return [c.get("Value") for c in root.iter(f"{{{SAMLP}}}StatusCode")]


EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
X509 = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
WINDOWS = "urn:oasis:names:tc:SAML:2.0:nameid-format:WindowsDomainQualifiedName"


async def test_name_id_formats_follow_the_policy(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki", default_name_id_policy=EMAIL)
    await login(client)
    values: dict[str | None, str] = {}
    for fmt in (None, EMAIL, PERSISTENT, TRANSIENT, X509, WINDOWS):
        page = await sso(client, "wiki", authn_request(name_id_format=fmt), "post")
        _, _, root = response_of(await page.text())
        name_id = _name_id(root)
        assert name_id.get("Format") == (fmt or EMAIL)
        values[fmt] = name_id.text
    assert values[None] == values[EMAIL] == "root@example.com"
    assert values[PERSISTENT] not in ("root@example.com", "akadmin", "1")
    assert values[X509] == values[WINDOWS] == values[PERSISTENT]  # no DN or UPN: persistent
    assert values[TRANSIENT] not in (values[PERSISTENT], values[EMAIL])
    page = await sso(client, "wiki", authn_request(name_id_format=PERSISTENT), "post")
    _, _, root = response_of(await page.text())
    assert _name_id(root).text == values[PERSISTENT]  # stable


async def test_an_unserved_name_id_format_gets_a_saml_error(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    await login(client)
    kerberos = "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos"
    page = await sso(client, "wiki", authn_request(name_id_format=kerberos, request_id="_k"))
    _, _, root = response_of(await page.text())
    assert _status(root) == [
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
        "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy",
    ]
    assert root.get("InResponseTo") == "_k"
    assert root.find(f"{{{SAML}}}Assertion") is None


async def test_login_comes_first(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    query = redirect_query(authn_request(), "rs")
    response = await client.get(
        f"/application/saml/wiki/sso/binding/redirect/?{query}", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"].startswith("/if/flow/default-authentication-flow/")
    assert "/application/saml/wiki/sso/continue/" in response.headers["Location"]
    passive = authn_request(request_id="_p").replace(
        'Version="2.0"', 'Version="2.0" IsPassive="true"'
    )
    page = await sso(client, "wiki", passive, "post")
    _, _, root = response_of(await page.text())
    assert _status(root)[-1] == "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
    assert root.find(f"{{{SAML}}}Assertion") is None


async def test_application_policies_run_before_any_assertion(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    status, policy = await api(
        "POST",
        "policies/expression/",
        json={"name": "nobody", "expression": "return False"},
    )
    assert status == 201, policy
    status, app = await api("GET", "core/applications/wiki/")
    status, binding = await api(
        "POST",
        "policies/bindings/",
        json={"target": app["pk"], "policy": policy["pk"], "order": 0},
    )
    assert status == 201, binding
    await login(client)
    page = await sso(client, "wiki", authn_request(), "post")
    assert page.status == 403
    assert "SAMLResponse" not in await page.text()


async def test_explicit_consent_is_asked_before_the_assertion(client: Any, api: Any) -> None:
    from oauth2kit import flow_pk

    explicit = await flow_pk(api, "default-provider-authorization-explicit-consent")
    await make_saml_provider(api, "wiki", authorization_flow=explicit)
    await login(client)
    query = redirect_query(authn_request(request_id="_c"), "rs")
    response = await client.get(
        f"/application/saml/wiki/sso/binding/redirect/?{query}", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == (
        "/if/flow/default-provider-authorization-explicit-consent/"
    )
    executor = "/api/v3/flows/executor/default-provider-authorization-explicit-consent/"
    challenge = await (await client.get(executor)).json()
    assert challenge["component"] == "ak-stage-consent", challenge
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    answer = await client.post(
        executor,
        json={"token": challenge["token"]},
        headers={"X-authentik-CSRF": csrf},
    )
    done = await answer.json()
    assert done["component"] == "xak-flow-redirect", done
    page = await follow(client, await client.get(done["to"], allow_redirects=False))
    _, _, root = response_of(await page.text())
    assert root.get("InResponseTo") == "_c"


async def test_idp_initiated_sso(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki", default_relay_state="/home")
    await login(client)
    response = await client.get("/application/saml/wiki/sso/binding/init/", allow_redirects=False)
    page = await follow(client, response)
    action, fields, root = response_of(await page.text())
    assert action == ACS and fields["RelayState"] == "/home"
    assert root.get("InResponseTo") is None
    data = root.find(f".//{{{SAML}}}SubjectConfirmationData")
    assert data.get("InResponseTo") is None and data.get("Recipient") == ACS


async def test_mappings_context_and_algorithms(client: Any, api: Any, tmp_path: Path) -> None:
    """A custom mapping runs in the expression pool; the AuthnContextClassRef comes from its
    mapping; ECDSA-SHA512 with a SHA-384 digest, verified by xmlsec1."""
    from oauth2kit import key_pair

    status, dept = await api(
        "POST",
        "propertymappings/provider/saml/",
        json={
            "name": "dept",
            "saml_name": "urn:oid:2.5.4.11",
            "friendly_name": "ou",
            "expression": 'return ["ops", request.user.username.upper()]',
        },
    )
    assert status == 201, dept
    status, acr = await api(
        "POST",
        "propertymappings/provider/saml/",
        json={
            "name": "acr",
            "saml_name": "acr",
            "expression": 'return "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"',
        },
    )
    signing = await key_pair(api, "ec-idp")
    await make_saml_provider(
        api,
        "wiki",
        signing_kp=signing,
        property_mappings=[dept["pk"]],
        authn_context_class_ref_mapping=acr["pk"],
        signature_algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        digest_algorithm="http://www.w3.org/2001/04/xmldsig-more#sha384",
    )
    await login(client)
    page = await sso(client, "wiki", authn_request(), "post")
    _, fields, root = response_of(await page.text())
    attribute = root.find(f".//{{{SAML}}}Attribute")
    assert attribute.get("Name") == "urn:oid:2.5.4.11" and attribute.get("FriendlyName") == "ou"
    assert [v.text for v in attribute] == ["ops", "AKADMIN"]
    ref = root.find(f".//{{{SAML}}}AuthnContextClassRef")
    assert ref.text == "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
    method = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureMethod")
    assert method.get("Algorithm").endswith("ecdsa-sha512")
    status, pair = await api("GET", f"crypto/certificatekeypairs/{signing}/view_certificate/")
    assert status == 200, pair
    xmlsec_verify(tmp_path, base64.b64decode(fields["SAMLResponse"]), pair["data"], "Assertion")


async def test_conditions_follow_the_provider(client: Any, api: Any) -> None:
    await make_saml_provider(
        api,
        "wiki",
        assertion_valid_not_before="minutes=-2",
        assertion_valid_not_on_or_after="minutes=3",
    )
    await login(client)
    page = await sso(client, "wiki", authn_request(), "post")
    _, _, root = response_of(await page.text())
    conditions = root.find(f".//{{{SAML}}}Conditions")
    import datetime as dt

    start = dt.datetime.fromisoformat(conditions.get("NotBefore").replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(conditions.get("NotOnOrAfter").replace("Z", "+00:00"))
    assert dt.timedelta(minutes=4, seconds=58) <= end - start <= dt.timedelta(minutes=5, seconds=2)
    audience = root.find(f".//{{{SAML}}}Audience")
    assert audience.text == "https://sp.example.com/metadata"


async def test_a_changed_provider_is_used_at_once(client: Any, api: Any) -> None:
    """Providers are kept loaded in process; an edit through the API drops them."""
    provider = await make_saml_provider(api, "wiki")
    await login(client)
    page = await sso(client, "wiki", authn_request(acs=None), "post")
    assert response_of(await page.text())[0] == ACS
    status, _ = await api(
        "PATCH",
        f"providers/saml/{provider['pk']}/",
        json={"acs_url": "https://sp2.example.com/acs"},
    )
    assert status == 200
    page = await sso(client, "wiki", authn_request(acs=None), "post")
    assert response_of(await page.text())[0] == "https://sp2.example.com/acs"


async def test_the_unified_endpoint_serves_sso_and_slo(client: Any, api: Any) -> None:
    provider = await make_saml_provider(api, "wiki", default_relay_state="/home")
    assert provider["url_unified"].endswith("/application/saml/wiki/")
    assert provider["url_unified_init"].endswith("/application/saml/wiki/init/")
    await login(client)
    query = redirect_query(authn_request(request_id="_u"), "rs")
    page = await follow(
        client, await client.get(f"/application/saml/wiki/?{query}", allow_redirects=False)
    )
    _, _, root = response_of(await page.text())
    assert root.get("InResponseTo") == "_u"
    page = await follow(
        client, await client.get("/application/saml/wiki/init/", allow_redirects=False)
    )
    action, fields, _ = response_of(await page.text())
    assert fields["RelayState"] == "/home"
    logout = authn_request(request_id="_lo").replace("AuthnRequest", "LogoutRequest")
    response = await client.post(
        "/application/saml/wiki/", data=post_body(logout, "x"), allow_redirects=False
    )
    assert response.status == 302 and "SAMLResponse=" in response.headers["Location"]
    assert (await client.get("/api/v3/core/users/me/")).status != 200
    garbage = await client.get("/application/saml/wiki/?SAMLRequest=%%%")
    assert garbage.status == 400


@pytest.mark.parametrize(
    ("signature", "digest"),
    [
        ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"),
        (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ),
    ],
    ids=["sha1-when-asked", "sha512"],
)
async def test_configured_algorithms_are_used(
    client: Any, api: Any, tmp_path: Path, signature: str, digest: str
) -> None:
    key, cert = rsa_pair("idp")
    signing = await import_pair(api, "idp", cert, key)
    await make_saml_provider(
        api, "wiki", signing_kp=signing, signature_algorithm=signature, digest_algorithm=digest
    )
    await login(client)
    for _ in range(2):  # the second answer signs with the key parsed for the first
        page = await sso(client, "wiki", authn_request(), "post")
        _, fields, root = response_of(await page.text())
        ds = "{http://www.w3.org/2000/09/xmldsig#}"
        assert root.find(f".//{ds}SignatureMethod").get("Algorithm") == signature
        assert root.find(f".//{ds}DigestMethod").get("Algorithm") == digest
        xmlsec_verify(tmp_path, base64.b64decode(fields["SAMLResponse"]), cert, "Assertion")
