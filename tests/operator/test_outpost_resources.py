"""ProxyProvider and Outpost samples against their CRDs (as the API server admits them) and against
the models: good samples pass both with the same defaults; each bad one is refused by both, the
CRD for the reason named (a schema error or a CEL rule)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import crdkit
import pydantic
import pytest

from tessera.operator.resources import outpost, proxyprovider

Resource = dict[str, Any]


def _proxy(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "ProxyProvider",
        "metadata": {"name": "wiki", "namespace": "apps"},
        "spec": {
            "externalHost": "https://wiki.example.com",
            "internalHost": "http://wiki.apps.svc:8080",
            **spec,
        },
    }


def _outpost(**spec: Any) -> Resource:
    return {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "Outpost",
        "metadata": {"name": "edge", "namespace": "apps"},
        "spec": {"type": "proxy", "providerRefs": [{"name": "wiki"}], **spec},
    }


GOOD = {
    "minimal_proxy_provider": _proxy(),
    "forward_domain_provider": _proxy(
        mode="forward_domain",
        externalHost="https://auth.example.com",
        cookieDomain="example.com",
        skipPathRegex=["^/health$", "^/api/public/.*"],
        basicAuth={"userAttribute": "ldap_user", "passwordAttribute": "ldap_password"},
        interceptHeaderAuth=False,
        accessTokenValidity="hours=8",
        deletionPolicy="Orphan",
    ),
    "minimal_outpost": _outpost(),
    "ldap_outpost_without_providers": _outpost(type="ldap", providerRefs=[]),
    "full_outpost": _outpost(
        replicas=3,
        image="registry.example/tessera:1.0",
        imagePullPolicy="Always",
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        serviceType="NodePort",
        ingress={"className": "nginx", "annotations": {"a/b": "c"}, "tlsSecretName": "tls"},
        refreshInterval="minutes=1",
        disabledComponents=["serviceMonitor"],
        jsonPatches={
            "deployment": [
                {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"a": "b"}},
                {"op": "test", "path": "/spec/replicas", "value": 3},
                {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/copy"},
            ],
            "metricsService": [{"op": "remove", "path": "/metadata/labels/tessera.dev~1metrics"}],
        },
    ),
}


@pytest.mark.parametrize("resource", GOOD.values(), ids=GOOD)
def test_good_samples_are_admitted_and_parsed_with_the_same_defaults(resource: Resource) -> None:
    crdkit.check_good_sample(resource)


def test_the_proxy_provider_defaults_are_authentiks() -> None:
    spec = proxyprovider.ProxyProviderSpec.model_validate(_proxy()["spec"])
    assert spec.mode == "proxy"
    assert spec.internal_host_ssl_validation and spec.intercept_header_auth
    assert (spec.access_token_validity, spec.refresh_token_validity) == ("hours=24", "days=30")
    assert spec.basic_auth is None and spec.skip_path_regex == []


def _edit(resource: Resource, change: Callable[[dict[str, Any]], Any]) -> Resource:
    broken = copy.deepcopy(resource)
    change(broken["spec"])
    return broken


PATCH = "deployment"
BAD = {
    "proxy_mode_without_internal_host": (
        _edit(_proxy(), lambda s: s.pop("internalHost")),
        "internalHost is required in proxy mode",
    ),
    "domain_mode_without_cookie_domain": (
        _proxy(mode="forward_domain"),
        "cookieDomain is required in forward_domain mode",
    ),
    "external_host_not_http": (_proxy(externalHost="ftp://wiki.example.com"), "does not match"),
    "cookie_domain_with_a_scheme": (
        _proxy(mode="forward_domain", cookieDomain="https://example.com"),
        "does not match",
    ),
    "unknown_mode": (_proxy(mode="sidecar"), "'sidecar' is not one of"),
    "wrong_outpost_type": (_outpost(type="radius"), "'radius' is not one of ['proxy', 'ldap']"),
    "ldap_outpost_serving_a_proxy_provider": (
        _outpost(type="ldap"),
        "only a proxy outpost serves ProxyProviders",
    ),
    "a_provider_named_twice": (
        _outpost(providerRefs=[{"name": "wiki"}, {"name": "wiki"}]),
        "a provider is named once",
    ),
    "unknown_provider_kind": (
        _outpost(providerRefs=[{"kind": "SAMLProvider", "name": "x"}]),
        "'SAMLProvider' is not one of",
    ),
    "too_many_replicas": (_outpost(replicas=1000), "1000 is greater than the maximum of 100"),
    "unknown_component": (_outpost(disabledComponents=["pod"]), "'pod' is not one of"),
    "unknown_patched_component": (
        _outpost(jsonPatches={"pod": [{"op": "remove", "path": "/spec"}]}),
        'unknown field "pod"',
    ),
    "unknown_patch_op": (
        _outpost(jsonPatches={PATCH: [{"op": "merge", "path": "/spec"}]}),
        "'merge' is not one of",
    ),
    "patch_path_not_a_pointer": (
        _outpost(jsonPatches={PATCH: [{"op": "remove", "path": "spec/replicas"}]}),
        "does not match",
    ),
    "patch_moving_the_object_to_another_namespace": (
        _outpost(
            jsonPatches={PATCH: [{"op": "replace", "path": "/metadata/namespace", "value": "x"}]}
        ),
        "a patch may not change",
    ),
    "patch_detaching_the_owner": (
        _outpost(jsonPatches={PATCH: [{"op": "remove", "path": "/metadata/ownerReferences"}]}),
        "a patch may not change",
    ),
    "patch_moving_the_owner_away": (
        _outpost(
            jsonPatches={
                PATCH: [{"op": "move", "from": "/metadata/ownerReferences", "path": "/spec/x"}]
            }
        ),
        "a patch may not change",
    ),
    "copy_without_from": (
        _outpost(jsonPatches={PATCH: [{"op": "copy", "path": "/spec/x"}]}),
        "move and copy need from",
    ),
    "bad_quantity": (
        _outpost(resources={"limits": {"memory": "lots"}}),
        "does not match",
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


def test_a_skip_path_that_does_not_compile_is_refused_by_the_model() -> None:
    with pytest.raises(pydantic.ValidationError, match="not a valid regular expression"):
        crdkit.parse(_proxy(skipPathRegex=["^/api/(unclosed"]))


def test_the_type_of_an_outpost_is_immutable() -> None:
    old = _outpost(type="ldap", providerRefs=[])
    assert crdkit.failures(_outpost(type="proxy", providerRefs=[]), old) == [
        "self.spec.type: type is immutable: create another Outpost for another type"
    ]
    assert crdkit.failures(_outpost(type="ldap", providerRefs=[], replicas=2), old) == []


def test_statuses_written_with_the_models_match_the_crd() -> None:
    status = outpost.OutpostStatus.model_validate(
        {
            "observedGeneration": 2,
            "outpostUID": "11111111-2222-4333-8444-555555555555",
            "replicas": 2,
            "readyReplicas": 1,
            "connectedInstances": 1,
            "instances": [
                {"uid": "i1", "hostname": "pod-1", "version": "1.0", "lastSeen": "2026-01-01"}
            ],
            "components": ["Deployment/tessera-outpost-edge"],
            "skipped": ["middleware: the cluster serves no Traefik Middleware"],
        }
    )
    resource = {**_outpost(), "status": status.to_kube()}
    assert crdkit.failures(resource) == []
