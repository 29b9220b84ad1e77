"""`/api/v3/providers/saml/` and `/api/v3/propertymappings/provider/saml/`: authentik's fields and
defaults, the system mappings (protected), metadata export and import from SP metadata, and bad
input refused with a 400 naming the field."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from oauth2kit import IMPLICIT, flow_pk
from samlkit import ACS, SP_ENTITY, import_pair, make_saml_provider, rsa_pair

MD = "urn:oasis:names:tc:SAML:2.0:metadata"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_defaults_are_authentiks(api: Any) -> None:
    provider = await make_saml_provider(api, "wiki")
    assert provider["component"] == "ak-provider-saml-form"
    assert provider["meta_model_name"] == "authentik_providers_saml.samlprovider"
    assert provider["assertion_valid_not_before"] == "minutes=-5"
    assert provider["assertion_valid_not_on_or_after"] == "minutes=5"
    assert provider["session_valid_not_on_or_after"] == "minutes=86400"
    assert provider["digest_algorithm"] == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert provider["signature_algorithm"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert provider["sign_assertion"] is True and provider["sign_response"] is False
    assert (
        provider["sp_binding"] == "redirect" and provider["logout_method"] == "frontchannel_iframe"
    )
    assert provider["default_name_id_policy"] == (
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
    )
    assert provider["url_sso_post"].endswith("/application/saml/wiki/sso/binding/post/")
    assert provider["url_sso_redirect"].endswith("/application/saml/wiki/sso/binding/redirect/")
    assert provider["url_sso_init"].endswith("/application/saml/wiki/sso/binding/init/")
    assert provider["url_slo_redirect"].endswith("/application/saml/wiki/slo/binding/redirect/")
    assert provider["url_download_metadata"].endswith("/application/saml/wiki/metadata/?download")
    assert provider["assigned_application_slug"] == "wiki"


async def test_system_mappings_exist_and_are_protected(api: Any) -> None:
    status, page = await api("GET", "propertymappings/provider/saml/?page_size=100")
    assert status == 200
    names = {m["saml_name"] for m in page["results"] if m["managed"]}
    assert "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn" in names
    assert "http://schemas.goauthentik.io/2021/02/saml/username" in names
    assert "http://schemas.xmlsoap.org/claims/Group" in names
    assert len(names) == 7
    managed = next(m for m in page["results"] if m["managed"])
    status, _ = await api("DELETE", f"propertymappings/provider/saml/{managed['pk']}/")
    assert status == 403
    status, _ = await api(
        "PATCH", f"propertymappings/provider/saml/{managed['pk']}/", json={"expression": "return 1"}
    )
    assert status == 403
    status, body = await api(
        "POST",
        "propertymappings/provider/saml/",
        json={"name": "bad", "saml_name": "x", "expression": "import os"},
    )
    assert status == 400 and "expression" in body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("acs_url", "javascript:alert(1)"),
        ("assertion_valid_not_before", "minutes=abc"),
        ("digest_algorithm", "md5"),
        ("default_name_id_policy", "urn:x"),
        ("sp_binding", "artifact"),
        ("property_mappings", ["00000000-0000-4000-8000-000000000000"]),
    ],
)
async def test_bad_fields_are_a_400_naming_them(api: Any, field: str, value: Any) -> None:
    body = {
        "name": "bad",
        "authorization_flow": await flow_pk(api, IMPLICIT),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "acs_url": ACS,
        field: value,
    }
    status, answer = await api("POST", "providers/saml/", json=body)
    assert status == 400 and field in answer, answer


async def test_signing_needs_a_private_key(api: Any) -> None:
    _, cert = rsa_pair()
    kp = await import_pair(api, "cert-only", cert)
    status, body = await api(
        "POST",
        "providers/saml/",
        json={
            "name": "x",
            "authorization_flow": await flow_pk(api, IMPLICIT),
            "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
            "acs_url": ACS,
            "signing_kp": kp,
        },
    )
    assert status == 400 and "signing_kp" in body


async def test_metadata_names_the_endpoints_and_certificate(
    api: Any, client: Any, tmp_path: Path
) -> None:
    provider = await make_saml_provider(api, "wiki")
    status, body = await api("GET", f"providers/saml/{provider['pk']}/metadata/")
    assert status == 200
    root = etree.fromstring(body["metadata"].encode())
    assert root.get("entityID") == provider["url_issuer"]
    sso = root.findall(f".//{{{MD}}}SingleSignOnService")
    assert {s.get("Location") for s in sso} == {
        provider["url_sso_redirect"],
        provider["url_sso_post"],
    }
    assert root.find(f".//{{{MD}}}KeyDescriptor") is not None
    public = await client.get("/application/saml/wiki/metadata/?download")
    assert public.status == 200
    assert "attachment" in public.headers["Content-Disposition"]
    document = await public.read()
    assert document.startswith(b"<?xml")
    # Signed with the provider's key: xmlsec1 checks it with the published certificate.
    status, pem = await api(
        "GET", f"crypto/certificatekeypairs/{provider['signing_kp']}/view_certificate/"
    )
    assert status == 200
    (tmp_path / "metadata.xml").write_bytes(document)
    (tmp_path / "cert.pem").write_text(pem["data"])
    checked = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--pubkey-cert-pem",
            str(tmp_path / "cert.pem"),
            "--id-attr:ID",
            f"{MD}:EntityDescriptor",
            str(tmp_path / "metadata.xml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    signature = etree.fromstring(document)[0]
    assert signature.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"


SP_METADATA = """<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://sp.example.com/sls"/>
    <md:AssertionConsumerService index="0"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"""


def _cert_body(cert: str) -> str:
    return "".join(line for line in cert.splitlines() if "CERTIFICATE" not in line)


async def _import(client: Any, api: Any, document: str, name: str = "imported") -> Any:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("authorization_flow", await flow_pk(api, IMPLICIT))
    form.add_field("invalidation_flow", await flow_pk(api, "default-invalidation-flow"))
    form.add_field("file", document.encode(), filename="sp.xml", content_type="text/xml")
    return await client.post(
        "/api/v3/providers/saml/import_metadata/",
        data=form,
        headers={"Authorization": "Bearer " + __import__("helpers").BOOTSTRAP_TOKEN},
    )


async def test_import_from_sp_metadata(api: Any, client: Any) -> None:
    _, cert = rsa_pair()
    document = SP_METADATA.format(entity=SP_ENTITY, cert=_cert_body(cert), acs=ACS)
    response = await _import(client, api, document)
    body = await response.json()
    assert response.status == 201, body
    assert body["acs_url"] == ACS and body["sp_binding"] == "post"
    assert body["audience"] == SP_ENTITY
    assert body["sls_url"] == "https://sp.example.com/sls" and body["sls_binding"] == "redirect"
    assert body["verification_kp"] is not None
    assert len(body["property_mappings"]) == 7


async def test_authentiks_client_imports_sp_metadata_as_a_multipart_form(
    api: Any, client: Any
) -> None:
    """authentik's generated client sends the import as multipart/form-data (the OpenAPI
    document says so) and parses the provider it gets back."""
    import asyncio
    import uuid

    import akclientkit
    from authentik_client.api.providers_api import ProvidersApi
    from helpers import BOOTSTRAP_TOKEN

    document = await client.get("/api/v3/schema/")
    operation = (await document.json())["paths"]["/providers/saml/import_metadata/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data"}
    _, cert = rsa_pair()
    xml = SP_METADATA.format(entity=SP_ENTITY, cert=_cert_body(cert), acs=ACS)
    providers = ProvidersApi(akclientkit.Driver(str(client.make_url("/")), BOOTSTRAP_TOKEN).client)
    flows = [uuid.UUID(await flow_pk(api, s)) for s in (IMPLICIT, "default-invalidation-flow")]
    made = await asyncio.to_thread(
        providers.providers_saml_import_metadata_create,
        "from the client",
        *flows,
        ("sp.xml", xml.encode()),
    )
    assert made.name == "from the client" and made.acs_url == ACS and made.audience == SP_ENTITY


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&x;"/>',
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><r>&lol3;</r>',
        "<not-xml",
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
    ],
    ids=["xxe", "billion-laughs", "malformed", "no-sp"],
)
async def test_hostile_metadata_is_a_400(api: Any, client: Any, document: str) -> None:
    response = await _import(client, api, document)
    body = await response.json()
    assert response.status == 400 and "file" in body, body
    status, page = await api("GET", "providers/saml/")
    assert page["pagination"]["count"] == 0


async def test_listed_among_all_providers(api: Any) -> None:
    provider = await make_saml_provider(api, "wiki")
    status, every = await api("GET", f"providers/all/{provider['pk']}/")
    assert status == 200
    assert every["component"] == "ak-provider-saml-form"
    assert every["verbose_name"] == "SAML Provider"
    assert every["authorization_flow"] == provider["authorization_flow"]
    assert every["property_mappings"] == provider["property_mappings"]
    status, _ = await api("GET", f"providers/oauth2/{provider['pk']}/")
    assert status == 404
    status, _ = await api("DELETE", f"providers/all/{provider['pk']}/")
    assert status == 204
    status, _ = await api("GET", f"providers/saml/{provider['pk']}/")
    assert status == 404


async def test_authentication_flow_must_stay_empty(api: Any) -> None:
    body = {
        "name": "x",
        "authentication_flow": await flow_pk(api, "default-authentication-flow"),
        "authorization_flow": await flow_pk(api, IMPLICIT),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "acs_url": ACS,
    }
    status, answer = await api("POST", "providers/saml/", json=body)
    assert status == 400 and "authentication_flow" in answer


async def test_a_saml_application_launches_by_idp_initiated_sso(api: Any) -> None:
    await make_saml_provider(api, "wiki")
    status, app = await api("GET", "core/applications/wiki/")
    assert status == 200
    assert app["launch_url"].endswith("/application/saml/wiki/sso/binding/init/")
