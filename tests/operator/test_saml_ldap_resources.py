"""SAMLProvider and LDAPProvider samples (and ldap Outposts) against their CRDs, as the API server
admits them, and against the models: good samples pass both with the same defaults; each bad
one is refused by both, the CRD for the reason named (a schema error or a CEL rule)."""

from __future__ import annotations

from typing import Any

import crdkit
import pytest

from tessera.core.wire import ldap as wire_ldap
from tessera.core.wire import saml as wire_saml
from tessera.operator.resources import ldapprovider, samlprovider

Resource = dict[str, Any]


def _saml(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "SAMLProvider",
        "metadata": {"name": "nextcloud", "namespace": "apps"},
        "spec": {
            "acsURL": "https://cloud.example.com/apps/user_saml/saml/acs",
            "metadataConfigMap": {"name": "nextcloud-idp"},
            **spec,
        },
    }


def _without_acs(**spec: Any) -> Resource:
    resource = _saml(**spec)
    if "acsURL" not in spec:
        del resource["spec"]["acsURL"]
    return resource


def _ldap(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "LDAPProvider",
        "metadata": {"name": "jellyfin", "namespace": "apps"},
        "spec": {"connectionSecret": {"name": "jellyfin-ldap"}, **spec},
    }


def _outpost(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "Outpost",
        "metadata": {"name": "directory", "namespace": "apps"},
        "spec": {
            "type": "ldap",
            "providerRefs": [{"kind": "LDAPProvider", "name": "jellyfin"}],
            **spec,
        },
    }


GOOD = {
    "minimal_saml_provider": _saml(),
    "full_saml_provider": _saml(
        spBinding="post",
        audience="https://cloud.example.com/apps/user_saml/saml/metadata",
        issuerOverride="https://sso.example.com/saml",
        slsURL="https://cloud.example.com/apps/user_saml/saml/sls",
        slsBinding="post",
        logoutMethod="backchannel",
        assertionValidNotBefore="minutes=-2",
        assertionValidNotOnOrAfter="minutes=10",
        sessionValidNotOnOrAfter="hours=8;minutes=30",
        digestAlgorithm="sha512",
        signatureAlgorithm="ecdsa-sha256",
        signingKey={"generate": "EC"},
        verificationKey={"name": "nextcloud-sp"},
        encryptionKey={"name": "nextcloud-sp"},
        signAssertion=False,
        signResponse=True,
        signLogoutRequest=True,
        signLogoutResponse=True,
        propertyMappings=["authentik default SAML Mapping: Email"],
        nameIdMapping="authentik default SAML Mapping: Username",
        authnContextClassRefMapping="acr",
        defaultNameIdPolicy="persistent",
        defaultRelayState="/apps/files",
        authorizationFlow="default-provider-authorization-explicit-consent",
        invalidationFlow="default-invalidation-flow",
        deletionPolicy="Orphan",
    ),
    "saml_provider_from_inline_metadata": _without_acs(spMetadata={"inline": "<md:x/>"}),
    "saml_provider_from_a_config_map": _without_acs(
        spMetadata={"configMapRef": {"name": "nextcloud-sp"}},
        acsURL="https://cloud.example.com/acs",  # given: wins over the metadata's
        logoutMethod="backchannel",  # the SLS may come from the metadata
    ),
    "minimal_ldap_provider": _ldap(),
    "full_ldap_provider": _ldap(
        baseDN="dc=example,dc=com",
        certificate={"name": "ldap.example.com"},
        tlsServerName="ldap.example.com",
        uidStartNumber=10000,
        gidStartNumber=20000,
        bindMode="cached",
        searchMode="cached",
        mfaSupport=False,
        searchGroups=["media", "admins"],
        searchUsers=["jellyfin-bind"],
        authorizationFlow="ldap-bind",
        invalidationFlow="default-invalidation-flow",
        deletionPolicy="Orphan",
    ),
    "ldap_outpost": _outpost(),
}


@pytest.mark.parametrize("resource", GOOD.values(), ids=GOOD)
def test_good_samples_are_admitted_and_parsed_with_the_same_defaults(resource: Resource) -> None:
    crdkit.check_good_sample(resource)


def test_the_saml_defaults_are_the_cores() -> None:
    spec = samlprovider.SAMLProviderSpec.model_validate(_saml()["spec"])
    core = wire_saml.SAMLProviderRequest.model_fields
    for field in (
        "sp_binding",
        "sls_binding",
        "logout_method",
        "assertion_valid_not_before",
        "assertion_valid_not_on_or_after",
        "session_valid_not_on_or_after",
        "sign_assertion",
        "sign_response",
        "sign_logout_request",
        "sign_logout_response",
        "default_relay_state",
        "audience",
        "issuer_override",
    ):
        assert getattr(spec, field) == core[field].default, field
    assert samlprovider.DIGESTS[spec.digest_algorithm] == core["digest_algorithm"].default
    assert samlprovider.SIGNATURES[spec.signature_algorithm] == core["signature_algorithm"].default
    policy = samlprovider.NAME_ID_POLICIES[spec.default_name_id_policy]
    assert policy == core["default_name_id_policy"].default


def test_the_short_names_cover_every_value_of_the_core() -> None:
    def values(name: str) -> set[str]:
        return set(wire_saml.SAMLProviderRequest.model_fields[name].annotation.__args__)  # type: ignore[union-attr]

    assert set(samlprovider.DIGESTS.values()) == values("digest_algorithm")
    assert set(samlprovider.SIGNATURES.values()) == values("signature_algorithm")
    assert set(samlprovider.NAME_ID_POLICIES.values()) == set(wire_saml.NAMEID_FORMATS)


def test_the_ldap_defaults_are_the_cores() -> None:
    spec = ldapprovider.LDAPProviderSpec.model_validate(_ldap()["spec"])
    core = wire_ldap.LDAPProviderRequest.model_fields
    for field in (
        "base_dn",
        "uid_start_number",
        "gid_start_number",
        "search_mode",
        "bind_mode",
        "mfa_support",
    ):
        assert getattr(spec, field) == core[field].default, field


BAD = {
    "acs_url_not_http": (_saml(acsURL="javascript:alert(1)"), "does not match"),
    "acs_url_with_user_info": (
        _saml(acsURL="https://user@cloud.example.com/acs"),
        "does not match",
    ),
    "sls_url_not_http": (_saml(slsURL="ftp://cloud.example.com/sls"), "does not match"),
    "unknown_binding": (_saml(spBinding="artifact"), "'artifact' is not one of"),
    "unknown_digest": (_saml(digestAlgorithm="md5"), "'md5' is not one of"),
    "an_offset_without_unit": (_saml(assertionValidNotBefore="-5"), "does not match"),
    "signing_the_response_without_a_key": (
        _saml(signResponse=True),
        "signResponse, signLogoutRequest and signLogoutResponse need a signingKey",
    ),
    "backchannel_logout_without_sls": (
        _saml(logoutMethod="backchannel"),
        "backchannel logout posts to the SP",
    ),
    "signing_key_named_and_generated": (
        _saml(signingKey={"name": "a", "generate": "RSA"}),
        "set exactly one of name",
    ),
    "generated_rsa_key_with_an_ecdsa_algorithm": (
        _saml(signingKey={"generate": "RSA"}, signatureAlgorithm="ecdsa-sha256"),
        "signatureAlgorithm must suit the generated key",
    ),
    "generated_ec_key_with_the_default_algorithm": (
        _saml(signingKey={"generate": "EC"}),
        "signatureAlgorithm must suit the generated key",
    ),
    "mapping_named_twice": (
        _saml(propertyMappings=["a", "a"]),
        "has non-unique elements",
    ),
    "saml_without_config_map": (
        {**_saml(), "spec": {"acsURL": "https://cloud.example.com/acs"}},
        "'metadataConfigMap' is a required property",
    ),
    "neither_acs_url_nor_metadata": (_without_acs(), "set acsURL, or spMetadata"),
    "metadata_inline_and_from_a_config_map": (
        _without_acs(spMetadata={"inline": "<x/>", "configMapRef": {"name": "sp"}}),
        "set exactly one of inline and configMapRef",
    ),
    "metadata_read_from_the_written_config_map": (
        _without_acs(spMetadata={"configMapRef": {"name": "nextcloud-idp"}}),
        "metadataConfigMap is written by the operator",
    ),
    "base_dn_not_a_dn": (_ldap(baseDN="example.com"), "does not match"),
    "base_dn_with_an_injected_filter": (_ldap(baseDN="dc=x)(uid=*"), "does not match"),
    "negative_uid_start": (_ldap(uidStartNumber=-1), "-1 is less than the minimum of 0"),
    "unknown_bind_mode": (_ldap(bindMode="lazy"), "'lazy' is not one of"),
    "search_group_named_twice": (_ldap(searchGroups=["a", "a"]), "has non-unique elements"),
    "server_name_with_a_port": (_ldap(tlsServerName="ldap.example.com:636"), "does not match"),
    "ldap_without_secret": (
        {**_ldap(), "spec": {}},
        "'connectionSecret' is a required property",
    ),
    "proxy_outpost_serving_an_ldap_provider": (
        _outpost(type="proxy"),
        "only an ldap outpost serves LDAPProviders",
    ),
    "ldap_outpost_serving_a_proxy_provider": (
        _outpost(providerRefs=[{"kind": "ProxyProvider", "name": "wiki"}]),
        "only a proxy outpost serves ProxyProviders",
    ),
}


@pytest.mark.parametrize(("resource", "reason"), BAD.values(), ids=BAD)
def test_bad_samples_are_refused_by_the_crd_for_the_right_reason(
    resource: Resource, reason: str
) -> None:
    crdkit.check_refused_by_crd(resource, reason)


@pytest.mark.parametrize(("resource", "reason"), BAD.values(), ids=BAD)
def test_bad_samples_are_refused_by_the_models(resource: Resource, reason: str) -> None:
    crdkit.check_refused_by_model(resource)


def test_statuses_written_with_the_models_match_the_crd() -> None:
    saml = samlprovider.SAMLProviderStatus.model_validate(
        {
            "observedGeneration": 3,
            "providerPk": 12,
            "acsURL": "https://cloud.example.com/apps/user_saml/saml/acs",
            "entityID": "https://sso.example.com/application/saml/nextcloud/metadata/",
            "metadataURL": "https://sso.example.com/application/saml/nextcloud/metadata/?download",
        }
    )
    assert crdkit.failures({**_saml(), "status": saml.to_kube()}) == []
    ldap = ldapprovider.LDAPProviderStatus.model_validate(
        {"observedGeneration": 1, "providerPk": 13, "baseDN": "dc=example,dc=com"}
    )
    assert crdkit.failures({**_ldap(), "status": ldap.to_kube()}) == []


def test_the_printer_columns_show_readiness_and_what_an_sp_or_client_needs() -> None:
    for kind, wanted in (("SAMLProvider", "ACS URL"), ("LDAPProvider", "Base DN")):
        version = crdkit.crds()[kind]["spec"]["versions"][0]
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert names[:2] == ["Ready", "Reason"] and names[-1] == "Age"
        assert wanted in names
        assert version["subresources"] == {"status": {}}
