"""Contract cases for `providers/saml` and `propertymappings/provider/saml`."""

from __future__ import annotations

from typing import Any

from akcontract import Case, Setup
from akcontract.apps import _pem_pair


async def _saml_provider(setup: Setup) -> dict[str, Any]:
    authorize = await setup.first(
        "flows/instances", slug="default-provider-authorization-implicit-consent"
    )
    logout = await setup.first("flows/instances", slug="default-invalidation-flow")
    certificate, key = _pem_pair(f"idp-{setup.suffix}")
    signing = await setup.make(
        "crypto/certificatekeypairs",
        {"name": f"idp-{setup.suffix}", "certificate_data": certificate, "key_data": key},
    )
    mapping = await setup.first("propertymappings/provider/saml", managed__isnull="false")
    return {
        "name": f"nextcloud-{setup.suffix}",
        "authorization_flow": authorize["pk"],
        "invalidation_flow": logout["pk"],
        "property_mappings": [mapping["pk"]],
        "acs_url": f"https://cloud-{setup.suffix}.example.com/apps/user_saml/saml/acs",
        "sls_url": f"https://cloud-{setup.suffix}.example.com/apps/user_saml/saml/sls",
        "audience": f"https://cloud-{setup.suffix}.example.com/apps/user_saml/saml/metadata",
        "issuer_override": "",
        "assertion_valid_not_before": "minutes=-3",
        "assertion_valid_not_on_or_after": "minutes=10",
        "session_valid_not_on_or_after": "hours=8",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "signing_kp": signing["pk"],
        "sign_assertion": True,
        "sign_response": True,
        "sign_logout_request": False,
        "sign_logout_response": False,
        "sp_binding": "post",
        "sls_binding": "redirect",
        "logout_method": "frontchannel_native",
        "default_relay_state": "/apps/files",
        "default_name_id_policy": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    }


async def _saml_mapping(setup: Setup) -> dict[str, Any]:
    return {
        "name": f"department-{setup.suffix}",
        "saml_name": "urn:oid:2.5.4.11",
        "friendly_name": "ou",
        "expression": 'return request.user.attributes.get("department", "")',
    }


CASES = [
    Case(
        "providers/saml",
        _saml_provider,
        change={"sp_binding": "redirect", "sign_response": False},
        patch={"default_relay_state": "/apps/calendar"},
    ),
    Case(
        "propertymappings/provider/saml",
        _saml_mapping,
        change={"friendly_name": "department"},
        patch={"expression": "return request.user.username"},
    ),
]
