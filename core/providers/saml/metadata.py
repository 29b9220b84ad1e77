"""IdP metadata (export) and SP metadata (import).

`idp_metadata` is the `EntityDescriptor` an SP loads: the EntityID, the signing certificate, the
SSO and SLO endpoints of both bindings and the NameID formats. `parse_sp_metadata` reads an SP's
`EntityDescriptor` (through the hardened parser) into the fields of a provider: its EntityID as
the audience, its AssertionConsumerService (HTTP-POST preferred), its SingleLogoutService, whether
it signs its requests, and its signing certificate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from lxml import etree

from tessera.core import wire
from tessera.core.crypto import xmldsig
from tessera.core.providers.saml import records
from tessera.core.providers.saml.xml import (
    BINDING_POST,
    BINDING_REDIRECT,
    DS,
    MAX_METADATA,
    MD,
    MessageError,
    parse,
    q,
    text_of,
)


def idp_metadata(
    row: dict[str, Any], base_url: str, slug: str, signer: xmldsig.Signer | None
) -> bytes:
    """The IdP's `EntityDescriptor`, signed with the provider's signing key when it has one
    (enveloped, as its first child, with the provider's algorithms)."""
    urls = records.urls(base_url, slug)
    root = etree.Element(
        q(MD, "EntityDescriptor"),
        nsmap={"md": MD, "ds": DS},
        entityID=records.issuer(row, base_url, slug),
    )
    root.set("ID", "_" + secrets.token_hex(20))
    idp = etree.SubElement(
        root,
        q(MD, "IDPSSODescriptor"),
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
        WantAuthnRequestsSigned="true" if row["verification_kp"] else "false",
    )
    if signer is not None:
        descriptor = etree.SubElement(idp, q(MD, "KeyDescriptor"), use="signing")
        info = etree.SubElement(descriptor, q(DS, "KeyInfo"))
        data = etree.SubElement(info, q(DS, "X509Data"))
        etree.SubElement(data, q(DS, "X509Certificate")).text = xmldsig.certificate_body(
            signer.cert_pem
        )
    for binding, key in ((BINDING_REDIRECT, "url_slo_redirect"), (BINDING_POST, "url_slo_post")):
        etree.SubElement(idp, q(MD, "SingleLogoutService"), Binding=binding, Location=urls[key])
    for name_format in wire.saml.NAMEID_FORMATS:
        etree.SubElement(idp, q(MD, "NameIDFormat")).text = name_format
    for binding, key in ((BINDING_REDIRECT, "url_sso_redirect"), (BINDING_POST, "url_sso_post")):
        etree.SubElement(idp, q(MD, "SingleSignOnService"), Binding=binding, Location=urls[key])
    if signer is not None and signer.key_pem:
        xmldsig.sign(
            root,
            signer,
            signature_algorithm=row["signature_algorithm"],
            digest_algorithm=row["digest_algorithm"],
        )
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


@dataclass
class SPMetadata:
    entity_id: str
    acs_url: str
    sp_binding: str
    sls_url: str
    sls_binding: str
    signs_requests: bool
    signing_cert: str | None  # PEM


def _binding(value: str | None) -> str | None:
    return {BINDING_POST: "post", BINDING_REDIRECT: "redirect"}.get(value or "")


def _endpoint(sp: Any, name: str) -> tuple[str, str] | None:
    """The SP's endpoint of a kind, HTTP-POST preferred, then HTTP-Redirect."""
    found: dict[str, str] = {}
    for element in sp.findall(q(MD, name)):
        binding = _binding(element.get("Binding"))
        location = element.get("Location") or ""
        if binding and location and binding not in found:
            found[binding] = location
    for binding in ("post", "redirect"):
        if binding in found:
            return found[binding], binding
    return None


def parse_sp_metadata(data: bytes) -> SPMetadata:
    """An SP's metadata (MessageError when it is not usable)."""
    root = parse(data, limit=MAX_METADATA)
    if root.tag == q(MD, "EntitiesDescriptor"):
        entities = root.findall(q(MD, "EntityDescriptor"))
        if len(entities) != 1:
            raise MessageError("the metadata must describe exactly one service provider")
        root = entities[0]
    if root.tag != q(MD, "EntityDescriptor"):
        raise MessageError("the document is not SAML metadata (no EntityDescriptor)")
    sp = root.find(q(MD, "SPSSODescriptor"))
    if sp is None:
        raise MessageError("the metadata has no SPSSODescriptor")
    entity_id = root.get("entityID") or ""
    acs = _endpoint(sp, "AssertionConsumerService")
    if not entity_id or acs is None:
        raise MessageError("the metadata names no entityID or AssertionConsumerService")
    sls = _endpoint(sp, "SingleLogoutService") or ("", "redirect")
    cert: str | None = None
    for descriptor in sp.findall(q(MD, "KeyDescriptor")):
        if descriptor.get("use") not in (None, "signing"):
            continue
        body = text_of(
            descriptor.find(f"{q(DS, 'KeyInfo')}/{q(DS, 'X509Data')}/{q(DS, 'X509Certificate')}")
        )
        if body:
            try:
                cert = xmldsig.certificate_pem(body)
            except ValueError:
                raise MessageError("the metadata's signing certificate is not valid") from None
            break
    return SPMetadata(
        entity_id=entity_id,
        acs_url=acs[0],
        sp_binding=acs[1],
        sls_url=sls[0],
        sls_binding=sls[1],
        signs_requests=sp.get("AuthnRequestsSigned") in ("true", "1"),
        signing_cert=cert,
    )
