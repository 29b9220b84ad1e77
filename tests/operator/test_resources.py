"""Sample resources against the CRDs (as the API server admits them) and against the models.

Each bad sample must be refused by the CRD for the reason named in the test (the message of the
schema error or CEL rule), and the operator's models must refuse it too: a spec the operator parses
is never laxer than what the API server admitted. Good samples pass both, with the same defaults.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import crdkit
import jsonschema
import pydantic
import pytest

from tessera.operator import resources
from tessera.operator.resources import application, common, oauth2provider

Resource = dict[str, Any]


def _provider(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "OAuth2Provider",
        "metadata": {"name": "grafana", "namespace": "apps"},
        "spec": {"credentialsSecret": {"name": "grafana-oidc"}, **spec},
    }


def _application(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "grafana", "namespace": "apps"},
        "spec": {
            "name": "Grafana",
            "slug": "grafana",
            "providerRef": {"kind": "OAuth2Provider", "name": "grafana"},
            **spec,
        },
    }


GOOD = {
    "minimal_provider": _provider(),
    "full_confidential_provider": _provider(
        clientType="confidential",
        redirectURIs=[
            {"url": "https://grafana.example.com/login/generic_oauth", "matchingMode": "strict"},
            {"url": "^https://[a-z]+\\.example\\.com/cb$", "matchingMode": "regex"},
            {"url": "com.example.app:/oauth2redirect"},  # a native app's private-use scheme
        ],
        scopes=["openid", "email", "profile", "offline_access"],
        signingKey={"name": "authentik Self-signed Certificate"},
        accessCodeValidity="minutes=5",
        accessTokenValidity="hours=1;minutes=30",
        refreshTokenValidity="weeks=4;days=2",
        subMode="user_email",
        issuerMode="global",
        authorizationFlow="default-provider-authorization-explicit-consent",
        invalidationFlow="default-invalidation-flow",
        clientSecretRef={"name": "grafana-client-secret", "key": "secret"},
        deletionPolicy="Orphan",
    ),
    "public_provider_with_a_generated_ec_key": _provider(
        clientType="public", signingKey={"generate": "EC"}
    ),
    "minimal_application": _application(),
    "full_application": _application(
        launchURL="https://grafana.example.com/",
        group="Monitoring",
        description="Dashboards",
        publisher="Grafana Labs",
        policyEngineMode="all",
        accessGroups=["staff", "Grafana Admins"],
        deletionPolicy="Orphan",
    ),
}


@pytest.mark.parametrize("resource", GOOD.values(), ids=GOOD)
def test_good_samples_are_admitted_and_parsed_with_the_same_defaults(resource: Resource) -> None:
    crdkit.check_good_sample(resource)


def test_the_provider_defaults_are_authentiks() -> None:
    spec = oauth2provider.OAuth2ProviderSpec.model_validate(_provider()["spec"])
    assert spec.client_type == "confidential"
    assert spec.scopes == ["openid", "email", "profile"]
    assert (spec.access_code_validity, spec.access_token_validity) == ("minutes=1", "hours=1")
    assert spec.refresh_token_validity == "days=30"
    assert (spec.sub_mode, spec.issuer_mode) == ("hashed_user_id", "per_provider")
    assert spec.authorization_flow == "default-provider-authorization-implicit-consent"
    assert spec.invalidation_flow == "default-invalidation-flow"
    assert spec.deletion_policy == "Delete"
    assert spec.signing_key is None
    assert spec.client_secret_ref is None


def _edit(resource: Resource, change: Callable[[dict[str, Any]], Any]) -> Resource:
    broken = copy.deepcopy(resource)
    change(broken["spec"])
    return broken


PROVIDER = _provider(redirectURIs=[{"url": "https://app.example.com/cb"}])
APPLICATION = _application()
# name: (sample, what the CRD's refusal says)
BAD = {
    "unknown_client_type": (
        _edit(PROVIDER, lambda s: s.update(clientType="secretive")),
        "'secretive' is not one of ['confidential', 'public']",
    ),
    "unknown_matching_mode": (
        _edit(PROVIDER, lambda s: s["redirectURIs"][0].update(matchingMode="prefix")),
        "'prefix' is not one of ['strict', 'regex']",
    ),
    "unknown_sub_mode": (
        _edit(PROVIDER, lambda s: s.update(subMode="user_name")),
        "'user_name' is not one of",
    ),
    "go_style_duration": (
        _edit(PROVIDER, lambda s: s.update(accessTokenValidity="1h30m")),
        "'1h30m' does not match",
    ),
    "zero_duration": (
        _edit(PROVIDER, lambda s: s.update(accessCodeValidity="minutes=0")),
        "'minutes=0' does not match",
    ),
    "duration_with_a_trailing_separator": (
        _edit(PROVIDER, lambda s: s.update(refreshTokenValidity="days=30;")),
        "'days=30;' does not match",
    ),
    "duration_in_an_unknown_unit": (
        _edit(PROVIDER, lambda s: s.update(refreshTokenValidity="months=1")),
        "'months=1' does not match",
    ),
    "signing_key_named_and_generated": (
        _edit(PROVIDER, lambda s: s.update(signingKey={"name": "k", "generate": "RSA"})),
        "set exactly one of name (an existing core key pair) and generate",
    ),
    "signing_key_with_neither": (
        _edit(PROVIDER, lambda s: s.update(signingKey={})),
        "set exactly one of name (an existing core key pair) and generate",
    ),
    "signing_key_of_an_unknown_algorithm": (
        _edit(PROVIDER, lambda s: s.update(signingKey={"generate": "DSA"})),
        "'DSA' is not one of ['RSA', 'EC']",
    ),
    "client_secret_ref_on_a_public_client": (
        _edit(PROVIDER, lambda s: s.update(clientType="public", clientSecretRef={"name": "mine"})),
        "self.spec.clientSecretRef: clientSecretRef is only for confidential clients",
    ),
    "credentials_secret_overwriting_the_client_secret_ref": (
        _edit(PROVIDER, lambda s: s.update(clientSecretRef={"name": "grafana-oidc"})),
        "self.spec.credentialsSecret.name: credentialsSecret is written by the operator",
    ),
    "inline_client_secret": (
        _edit(PROVIDER, lambda s: s.update(clientSecret="hunter2hunter2")),
        'self.spec: unknown field "clientSecret"',
    ),
    "javascript_redirect_uri": (
        _edit(PROVIDER, lambda s: s["redirectURIs"][0].update(url=" JavaScript:alert(1)")),
        "javascript:, data: and vbscript: URIs are never redirect targets",
    ),
    "data_redirect_uri_in_regex_mode": (
        _edit(
            PROVIDER,
            lambda s: s["redirectURIs"][0].update(url="data:text/html,x", matchingMode="regex"),
        ),
        "javascript:, data: and vbscript: URIs are never redirect targets",
    ),
    "relative_strict_redirect_uri": (
        _edit(PROVIDER, lambda s: s["redirectURIs"][0].update(url="/login/callback")),
        "a strict redirect URI is an absolute URI",
    ),
    "strict_redirect_uri_with_a_newline": (
        _edit(PROVIDER, lambda s: s["redirectURIs"][0].update(url="https://a.example/\n")),
        "a strict redirect URI is an absolute URI",
    ),
    "repeated_scope": (
        _edit(PROVIDER, lambda s: s.update(scopes=["openid", "openid"])),
        "has non-unique elements",
    ),
    "scope_with_a_space": (
        _edit(PROVIDER, lambda s: s.update(scopes=["openid email"])),
        "'openid email' does not match",
    ),
    "too_many_redirect_uris": (
        _edit(
            PROVIDER,
            lambda s: s.update(redirectURIs=[{"url": f"https://a/{i}"} for i in range(65)]),
        ),
        "is too long",
    ),
    "credentials_secret_with_an_invalid_name": (
        _edit(PROVIDER, lambda s: s.update(credentialsSecret={"name": "Grafana_OIDC"})),
        "'Grafana_OIDC' does not match",
    ),
    "provider_without_a_credentials_secret": (
        _edit(PROVIDER, lambda s: s.pop("credentialsSecret")),
        "'credentialsSecret' is a required property",
    ),
    "flow_slug_with_a_slash": (
        _edit(PROVIDER, lambda s: s.update(authorizationFlow="../admin")),
        "'../admin' does not match",
    ),
    "unknown_deletion_policy": (
        _edit(PROVIDER, lambda s: s.update(deletionPolicy="Retain")),
        "'Retain' is not one of ['Delete', 'Orphan']",
    ),
    "application_with_an_invalid_slug": (
        _edit(APPLICATION, lambda s: s.update(slug="No Way")),
        "'No Way' does not match",
    ),
    "application_without_a_provider": (
        _edit(APPLICATION, lambda s: s.pop("providerRef")),
        "'providerRef' is a required property",
    ),
    "application_with_a_provider_of_another_kind": (
        _edit(APPLICATION, lambda s: s.update(providerRef={"kind": "Secret", "name": "x"})),
        "'Secret' is not one of ['OAuth2Provider', 'ProxyProvider', 'SAMLProvider', "
        "'LDAPProvider']",
    ),
    "application_with_an_unknown_policy_engine_mode": (
        _edit(APPLICATION, lambda s: s.update(policyEngineMode="most")),
        "'most' is not one of ['all', 'any']",
    ),
    "application_with_a_javascript_launch_url": (
        _edit(APPLICATION, lambda s: s.update(launchURL="javascript:alert(1)")),
        "'javascript:alert(1)' does not match",
    ),
    "application_with_repeated_access_groups": (
        _edit(APPLICATION, lambda s: s.update(accessGroups=["staff", "staff"])),
        "has non-unique elements",
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


def test_unknown_fields_are_pruned_when_the_client_does_not_ask_for_strict_validation() -> None:
    resource = BAD["inline_client_secret"][0]
    crd = crdkit.crds()["OAuth2Provider"]
    assert crdkit.crd_failures(crd, resource, strict=False) == []
    assert "clientSecret" not in crdkit.admitted(crd, resource)["spec"]  # never stored


def test_changing_the_slug_of_an_application_is_refused_by_the_transition_rule() -> None:
    renamed = _edit(APPLICATION, lambda s: s.update(slug="grafana-2"))
    assert crdkit.failures(renamed) == []  # a new application may have any slug
    failures = crdkit.failures(renamed, old=APPLICATION)
    assert len(failures) == 1
    assert failures[0].startswith("self.spec.slug: slug is immutable")


def test_an_update_keeping_the_slug_is_admitted() -> None:
    edited = _edit(APPLICATION, lambda s: s.update(name="Grafana OSS", accessGroups=["staff"]))
    assert crdkit.failures(edited, old=APPLICATION) == []


def _status_schema(kind: str) -> dict[str, Any]:
    schema = crdkit.openapi_schema(crdkit.crds()[kind], common.VERSION)
    assert schema is not None
    return crdkit._json_schema(schema["properties"]["status"])  # type: ignore[no-any-return]


def _ready(generation: int) -> common.Condition:
    return common.Condition(
        type=common.READY,
        status="False",
        reason=resources.Reason.CORE_UNAVAILABLE,
        message="the core did not answer",
        last_transition_time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        observed_generation=generation,
    )


def test_statuses_written_with_the_models_match_the_crd() -> None:
    provider = oauth2provider.OAuth2ProviderStatus(
        observed_generation=3, conditions=[_ready(3)], provider_pk=7, client_id="abc"
    ).to_kube()
    assert provider == {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "reason": "CoreUnavailable",
                "message": "the core did not answer",
            }
        ],
        "providerPk": 7,
        "clientID": "abc",
    }
    jsonschema.validate(provider, _status_schema("OAuth2Provider"))
    app = application.ApplicationStatus(
        observed_generation=1,
        conditions=[_ready(1)],
        application_uid="5f0c0b0e-0000-4000-8000-000000000001",
    ).to_kube()
    jsonschema.validate(app, _status_schema("Application"))
    assert set(app) == {"observedGeneration", "conditions", "applicationUID"}


def test_a_condition_reason_must_be_camel_case() -> None:
    with pytest.raises(pydantic.ValidationError):
        common.Condition(
            type="Ready",
            status="True",
            reason="not camel",
            message="",
            last_transition_time=dt.datetime.now(dt.UTC),
        )
    with pytest.raises(pydantic.ValidationError):
        common.Condition(
            type="Ready",
            status="Maybe",
            reason="Reconciled",
            message="",
            last_transition_time=dt.datetime.now(dt.UTC),
        )


def test_every_reason_is_a_valid_condition_reason() -> None:
    assert {r.value for r in resources.Reason} >= {
        "Reconciled",
        "CoreUnavailable",
        "InvalidSpec",
        "Conflict",
        "Deleting",
    }
    for reason in resources.Reason:
        common.Condition(
            type=resources.READY,
            status="False",
            reason=reason,
            message="",
            last_transition_time=dt.datetime.now(dt.UTC),
        )


def test_the_managed_marker_names_kind_namespace_name_and_uid() -> None:
    value = common.managed_value("OAuth2Provider", "apps", "grafana", "6f1c")
    assert value == "tessera.dev/OAuth2Provider/apps/grafana/6f1c"


def test_the_cel_string_literal_survives_quotes_and_backslashes() -> None:
    text = "it's a \\d"
    program = crdkit.cel_program(f"self == {common.cel_string(text)}")
    assert program.evaluate({"self": crdkit.celpy.json_to_cel(text)})
