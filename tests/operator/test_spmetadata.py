"""The SP metadata a SAMLProvider names (`spMetadata`): parsed into the core provider's fields, and
every hostile or unusable document refused with InvalidSpec naming `spec.spMetadata`, never
parsed with entities, a DTD or network access."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from operatorkit import sp_metadata_xml
from samlkit import rsa_pair

from tessera.operator.handlers import spmetadata
from tessera.operator.handlers.runtime import InvalidSpec

ENTITY = "https://cloud.example.com/saml/metadata"
ACS = "https://cloud.example.com/saml/acs"
MD = 'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


def test_the_endpoints_entity_and_certificate_are_read() -> None:
    _, cert = rsa_pair("cloud")
    sp = spmetadata.parse(sp_metadata_xml(ENTITY, ACS, cert, "https://cloud.example.com/sls"))
    assert (sp.entity_id, sp.acs_url, sp.acs_binding) == (ENTITY, ACS, "post")
    assert (sp.sls_url, sp.sls_binding) == ("https://cloud.example.com/sls", "redirect")
    assert sp.certificate is not None
    loaded = x509.load_pem_x509_certificate(sp.certificate.encode())
    assert loaded == x509.load_pem_x509_certificate(cert.encode())
    expected = ":".join(f"{b:02x}" for b in loaded.fingerprint(hashes.SHA256()))
    assert sp.fingerprint == expected


def test_a_minimal_document_has_no_logout_and_no_certificate() -> None:
    sp = spmetadata.parse(sp_metadata_xml(ENTITY, ACS))
    assert (sp.sls_url, sp.sls_binding, sp.certificate, sp.fingerprint) == (None, None, None, None)


def test_post_is_preferred_and_unknown_bindings_are_skipped() -> None:
    document = (
        f'<md:EntityDescriptor {MD} entityID="{ENTITY}"><md:SPSSODescriptor>'
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"'
        ' Location="https://cloud.example.com/artifact"/>'
        f'<md:AssertionConsumerService Binding="{REDIRECT}" Location="https://c.example/r"/>'
        f'<md:AssertionConsumerService Binding="{POST}" Location="https://c.example/p"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )
    sp = spmetadata.parse(document)
    assert (sp.acs_url, sp.acs_binding) == ("https://c.example/p", "post")


def test_an_entities_descriptor_with_one_sp_is_accepted() -> None:
    inner = sp_metadata_xml(ENTITY, ACS).split("?>", 1)[1]
    document = f"<md:EntitiesDescriptor {MD}>{inner}</md:EntitiesDescriptor>"
    assert spmetadata.parse(document).acs_url == ACS


_, CERT = rsa_pair("hostile")
HOSTILE = {
    "xxe": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<md:EntityDescriptor {MD} entityID="&x;"/>',
        "DOCTYPE or ENTITY",
    ),
    "billion_laughs": (
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><r>&lol3;</r>',
        "DOCTYPE or ENTITY",
    ),
    "doctype_in_lower_case_with_spaces": (
        f'<! doctype r SYSTEM "http://127.0.0.1:1/x.dtd"><md:EntityDescriptor {MD}/>',
        "DOCTYPE or ENTITY",
    ),
    "malformed": ("<md:EntityDescriptor", "not well-formed XML"),
    "not_metadata": ("<html><body/></html>", "not SAML metadata"),
    "no_sp": (f'<md:EntityDescriptor {MD} entityID="x"/>', "no SPSSODescriptor"),
    "no_entity_id": (sp_metadata_xml("", ACS), "no entityID"),
    "no_acs": (
        f'<md:EntityDescriptor {MD} entityID="x"><md:SPSSODescriptor/></md:EntityDescriptor>',
        "no AssertionConsumerService",
    ),
    "script_acs": (sp_metadata_xml(ENTITY, "javascript:alert(1)"), "not an http(s) URL"),
    "acs_with_user_info": (
        sp_metadata_xml(ENTITY, "https://user@evil.example/acs"),
        "not an http(s) URL",
    ),
    "script_sls": (
        sp_metadata_xml(ENTITY, ACS, sls="javascript:alert(1)"),
        "SingleLogoutService Location is not an http(s) URL",
    ),
    "two_sps": (
        f"<md:EntitiesDescriptor {MD}>"
        + 2 * sp_metadata_xml(ENTITY, ACS).split("?>", 1)[1]
        + "</md:EntitiesDescriptor>",
        "exactly one service provider",
    ),
    "bad_certificate": (
        sp_metadata_xml(ENTITY, ACS, "-----BEGIN-----\nbm90IGEgY2VydA==\n-----END-----"),
        "not a valid X.509 certificate",
    ),
    "too_large": (
        sp_metadata_xml(ENTITY, ACS).replace(
            "<md:SPSSODescriptor", "<!--" + "x" * 300_000 + "--><md:SPSSODescriptor"
        ),
        "larger than 256 KiB",
    ),
}


@pytest.mark.parametrize(("document", "reason"), HOSTILE.values(), ids=HOSTILE)
def test_hostile_and_unusable_documents_are_refused_naming_the_field(
    document: str, reason: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        spmetadata.parse(document)
    assert caught.value.message.startswith("spec.spMetadata: ")
    assert reason in caught.value.message
    assert "root:" not in caught.value.message  # nothing of a local file ever shows


def test_the_index_entry_names_the_config_map_of_the_metadata() -> None:
    spec = {"spMetadata": {"configMapRef": {"name": "cloud-sp", "key": "sp.xml"}}}
    assert spmetadata.entry("apps", "cloud", spec) == {("apps", "cloud-sp"): "cloud"}
    assert spmetadata.entry("apps", "cloud", {"spMetadata": {"inline": "<x/>"}}) == {}
    assert spmetadata.entry("apps", "cloud", {}) == {}
    assert spmetadata.version("DELETED", {"metadata": {"resourceVersion": "7"}}) == "absent"
    assert spmetadata.version("MODIFIED", {"metadata": {"resourceVersion": "7"}}) == "7"


IDP = (
    '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
    'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp/" ID="{id}">'
    "{signature}<md:IDPSSODescriptor>"
    f'<md:SingleSignOnService Binding="{POST}" Location="{{sso}}"/>'
    "</md:IDPSSODescriptor></md:EntityDescriptor>"
)


def _idp(id_: str, sso: str = "https://idp/sso/", signature: str = "") -> dict[str, str]:
    return {
        "entity_id": "https://idp/",
        "metadata.xml": IDP.format(id=id_, sso=sso, signature=signature),
    }


def test_the_idp_metadata_config_map_ignores_a_fresh_id_and_signature_only() -> None:
    from tessera.operator.handlers import samlproviders

    signed = "<ds:Signature><ds:SignatureValue>abc</ds:SignatureValue></ds:Signature>"
    assert samlproviders.same_data(_idp("_1"), _idp("_2", signature=signed))
    assert not samlproviders.same_data(_idp("_1"), _idp("_1", sso="https://idp/other/"))
    assert not samlproviders.same_data({**_idp("_1"), "entity_id": "x"}, _idp("_1"))
    assert not samlproviders.same_data({"entity_id": "https://idp/"}, _idp("_1"))
    broken = {**_idp("_1"), "metadata.xml": "<broken"}
    assert not samlproviders.same_data(broken, _idp("_1"))
    assert samlproviders.same_data(broken, broken)
