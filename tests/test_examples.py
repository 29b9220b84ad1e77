"""The sample resources in examples/: valid for the cluster and for Tessera's CRDs, and coherent.

Custom resources are checked against the CRDs in crds/ as the API server would on create
(tests/crdkit.py: unknown fields refused as `kubectl apply` asks, schema defaults applied, then the
OpenAPI schema as JSON Schema and the CEL rules with cel-python). Everything else is checked with
kubernetes-validate in strict mode for the oldest and newest supported Kubernetes versions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import crdkit
import kubernetes_validate
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE, ROOT
from crdkit import GROUP, crd_failures

EXAMPLES = ROOT / "examples"


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def _custom_resources() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in _example_files()
        for doc in crdkit.documents(path)
        if doc["apiVersion"].startswith(f"{GROUP}/")
    ]


def test_the_examples_hold_the_three_samples() -> None:
    names = {path.name for path in _example_files()}
    assert {"grafana.yaml", "public-client.yaml", "access-groups.yaml"} <= names


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
def test_every_kubernetes_object_in_the_examples_validates_strictly(kube: str) -> None:
    checked = 0
    for path in _example_files():
        for doc in crdkit.documents(path):
            if not doc["apiVersion"].startswith(f"{GROUP}/"):
                kubernetes_validate.validate(doc, kube, strict=True)
                checked += 1
    assert checked >= 4  # Grafana's Namespace, Deployment, Service and Ingress


CUSTOM_RESOURCES = _custom_resources()


@pytest.mark.parametrize(
    "resource", [r for _, r in CUSTOM_RESOURCES], ids=[i for i, _ in CUSTOM_RESOURCES]
)
def test_every_custom_resource_in_the_examples_is_accepted_by_its_crd(
    resource: dict[str, Any],
) -> None:
    crds = crdkit.crds()
    assert crds, "crds/ holds no tessera.dev CustomResourceDefinition"
    assert resource["kind"] in crds, f"no CRD for {resource['kind']} in crds/"
    assert crd_failures(crds[resource["kind"]], resource) == []


def _broken(kind: str) -> dict[str, Any]:
    """A sample resource of `kind` taken from the examples, to break in the test below."""
    return copy.deepcopy(next(r for _, r in CUSTOM_RESOURCES if r["kind"] == kind))


BROKEN = {
    "provider_with_an_unknown_client_type": (
        "OAuth2Provider",
        lambda r: r["spec"].update(clientType="secretive"),
    ),
    "provider_with_an_unknown_matching_mode": (
        "OAuth2Provider",
        lambda r: r["spec"]["redirectURIs"][0].update(matchingMode="prefix"),
    ),
    "provider_with_an_inline_secret": (
        "OAuth2Provider",
        lambda r: r["spec"].update(clientSecret="hunter2hunter2"),
    ),
    "application_without_a_provider": ("Application", lambda r: r["spec"].pop("providerRef")),
    "application_with_an_invalid_slug": ("Application", lambda r: r["spec"].update(slug="No Way")),
}


@pytest.mark.parametrize(("kind", "breaking"), BROKEN.values(), ids=BROKEN.keys())
def test_the_crd_check_refuses_broken_samples(kind: str, breaking: Any) -> None:
    crds = crdkit.crds()
    assert kind in crds, f"no CRD for {kind} in crds/"
    resource = _broken(kind)
    breaking(resource)
    assert crd_failures(crds[kind], resource) != []


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_grafana_reads_the_credentials_the_operator_writes_for_its_provider() -> None:
    docs = {
        (d["kind"], d["metadata"]["name"]): d for d in crdkit.documents(EXAMPLES / "grafana.yaml")
    }
    provider = docs["OAuth2Provider", "grafana"]
    application = docs["Application", "grafana"]
    deployment = docs["Deployment", "grafana"]
    assert application["spec"]["providerRef"] == {"kind": "OAuth2Provider", "name": "grafana"}
    namespaces = {d["metadata"].get("namespace") for d in docs.values() if d["kind"] != "Namespace"}
    assert namespaces == {"grafana"}  # providerRef and secretKeyRef resolve in one namespace
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    secret = provider["spec"]["credentialsSecret"]["name"]
    assert env["GF_AUTH_GENERIC_OAUTH_CLIENT_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": secret,
        "key": "client_id",
    }
    assert env["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": secret,
        "key": "client_secret",
    }
    # Grafana's callback is <root_url>login/generic_oauth: it must be a registered redirect URI.
    callback = env["GF_SERVER_ROOT_URL"]["value"] + "login/generic_oauth"
    assert {"url": callback, "matchingMode": "strict"} in provider["spec"]["redirectURIs"]
    slug = application["spec"]["slug"]
    assert f"/application/o/{slug}/end-session/" in env["GF_AUTH_SIGNOUT_REDIRECT_URL"]["value"]
    for name in ("AUTH_URL", "TOKEN_URL", "API_URL"):
        assert "/application/o/" in env[f"GF_AUTH_GENERIC_OAUTH_{name}"]["value"]


def test_the_public_client_example_has_no_secret_and_the_access_groups_one_names_groups() -> None:
    public = {d["kind"]: d for d in crdkit.documents(EXAMPLES / "public-client.yaml")}
    assert public["OAuth2Provider"]["spec"]["clientType"] == "public"
    assert "clientSecretRef" not in public["OAuth2Provider"]["spec"]
    groups = {d["kind"]: d for d in crdkit.documents(EXAMPLES / "access-groups.yaml")}
    assert groups["Application"]["spec"]["accessGroups"] == ["wiki-editors", "staff"]
    for sample in (public, groups):
        ref = sample["Application"]["spec"]["providerRef"]
        assert ref == {
            "kind": "OAuth2Provider",
            "name": sample["OAuth2Provider"]["metadata"]["name"],
        }


def test_the_saml_and_ldap_samples_link_their_resources_in_one_namespace() -> None:
    saml = {d["kind"]: d for d in crdkit.documents(EXAMPLES / "saml.yaml")}
    assert saml["Application"]["spec"]["providerRef"] == {
        "kind": "SAMLProvider",
        "name": saml["SAMLProvider"]["metadata"]["name"],
    }
    ldap = {d["kind"]: d for d in crdkit.documents(EXAMPLES / "ldap.yaml")}
    provider = {"kind": "LDAPProvider", "name": ldap["LDAPProvider"]["metadata"]["name"]}
    assert ldap["Application"]["spec"]["providerRef"] == provider
    assert ldap["Outpost"]["spec"] == {"type": "ldap", "providerRefs": [provider]}
    for sample in (saml, ldap):
        namespaces = {d["metadata"].get("namespace") for k, d in sample.items() if k != "Namespace"}
        assert namespaces == {sample["Namespace"]["metadata"]["name"]}
