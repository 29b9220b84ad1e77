"""Helpers for the SAML provider tests: key pairs, a provider with its application, SAML
messages encoded for either binding, and a login through the JSON executor."""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import urllib.parse
import zlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from oauth2kit import IMPLICIT, flow_pk
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

ACS = "https://sp.example.com/acs"
SLS = "https://sp.example.com/sls"
SP_ENTITY = "https://sp.example.com/metadata"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def rsa_pair(name: str = "sp") -> tuple[str, str]:
    """A fresh RSA-2048 key and self-signed certificate, PEM (key, cert)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


async def import_pair(api: Any, name: str, cert: str, key: str = "") -> str:
    body = {"name": f"{name}-{secrets.token_hex(3)}", "certificate_data": cert, "key_data": key}
    status, answer = await api("POST", "crypto/certificatekeypairs/", json=body)
    assert status == 201, answer
    return str(answer["pk"])


async def mapping_pks(api: Any) -> list[str]:
    status, body = await api("GET", "propertymappings/provider/saml/?page_size=100")
    assert status == 200, body
    return [m["pk"] for m in body["results"] if m["managed"]]


async def make_saml_provider(api: Any, slug: str, **fields: Any) -> dict[str, Any]:
    """A SAML provider for application `slug`, signing with a fresh RSA key unless told."""
    if "signing_kp" not in fields:
        key, cert = rsa_pair(f"idp-{slug}")
        fields["signing_kp"] = await import_pair(api, f"idp-{slug}", cert, key)
    body = {
        "name": f"{slug} saml",
        "authorization_flow": await flow_pk(api, IMPLICIT),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "acs_url": ACS,
        "sls_url": SLS,
        "audience": SP_ENTITY,
        "property_mappings": await mapping_pks(api),
        **fields,
    }
    status, provider = await api("POST", "providers/saml/", json=body)
    assert status == 201, provider
    status, app = await api(
        "POST", "core/applications/", json={"name": slug, "slug": slug, "provider": provider["pk"]}
    )
    assert status == 201, app
    status, provider = await api("GET", f"providers/saml/{provider['pk']}/")
    return dict(provider)


def authn_request(
    *,
    destination: str | None = None,
    acs: str | None = ACS,
    request_id: str | None = None,
    issuer: str = SP_ENTITY,
    name_id_format: str | None = None,
    extra: str = "",
    instant: dt.datetime | None = None,
) -> str:
    request_id = request_id or "_" + secrets.token_hex(16)
    when = (instant or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = f' ID="{request_id}" Version="2.0" IssueInstant="{when}"'
    if destination:
        attrs += f' Destination="{destination}"'
    if acs:
        attrs += f' AssertionConsumerServiceURL="{acs}"'
    policy = f'<samlp:NameIDPolicy Format="{name_id_format}"/>' if name_id_format else ""
    return (
        f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}"{attrs}>'
        f"<saml:Issuer>{issuer}</saml:Issuer>{extra}{policy}</samlp:AuthnRequest>"
    )


def redirect_query(xml: str | bytes, relay_state: str | None = None, **more: str) -> str:
    data = xml.encode() if isinstance(xml, str) else xml
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush()
    params = {"SAMLRequest": base64.b64encode(deflated).decode()}
    if relay_state is not None:
        params["RelayState"] = relay_state
    params.update(more)
    return urllib.parse.urlencode(params)


def post_body(xml: str | bytes, relay_state: str | None = None) -> dict[str, str]:
    data = xml.encode() if isinstance(xml, str) else xml
    body = {"SAMLRequest": base64.b64encode(data).decode()}
    if relay_state is not None:
        body["RelayState"] = relay_state
    return body


_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]*)" id="form-post">')


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The autosubmit form's action and fields (HTML-unescaped)."""
    import html

    action = _ACTION.search(page)
    assert action is not None, page[:2000]
    fields = {html.unescape(k): html.unescape(v) for k, v in _FIELD.findall(page)}
    return html.unescape(action.group(1)), fields


async def get_raw(client: Any, path: str) -> Any:
    """GET `path` with its query exactly as given (the Redirect binding's signature covers the
    encoded query; the client would otherwise normalize its escapes)."""
    import yarl

    base = str(client.make_url("/")).rstrip("/")
    return await client.session.get(yarl.URL(base + path, encoded=True), allow_redirects=False)


async def follow(client: Any, response: Any, limit: int = 10) -> Any:
    """Follow same-site redirects (the login and the authorization flow) to the final page."""
    for _ in range(limit):
        if response.status not in (301, 302, 303):
            return response
        location = response.headers["Location"]
        parts = urllib.parse.urlsplit(location)
        if parts.netloc and parts.netloc != client.make_url("/").host + f":{client.port}":
            return response
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = await client.get(path, allow_redirects=False)
    return response


# Service providers nobody here wrote -------------------------------------------------------

BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


async def idp_metadata(client: Any) -> str:
    response = await client.get("/application/saml/wiki/metadata/")
    assert response.status == 200
    return str(await response.text())


def onelogin_settings(idp_metadata: str, key: str, cert: str) -> dict[str, Any]:
    idp = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)
    return {
        "strict": True,
        "sp": {
            "entityId": SP_ENTITY,
            "assertionConsumerService": {"url": ACS, "binding": BINDING_POST},
            "singleLogoutService": {"url": SLS, "binding": BINDING_REDIRECT},
            "NameIDFormat": EMAIL_FORMAT,
            "x509cert": cert,
            "privateKey": key,
        },
        "idp": idp["idp"],
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": True,
            "wantAssertionsEncrypted": False,
            "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        },
    }


def onelogin_request(post: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "https": "on",
        "http_host": "sp.example.com",
        "script_name": "/acs",
        "get_data": {},
        "post_data": post or {},
    }
