"""The generated CRDs: committed copies up to date, valid for Kubernetes, structural, CEL-bounded.

crds/ and the chart's copy (helm/tessera/crds/, which Helm installs before the templates) must be
exactly what `python -m tessera.operator.crds` writes from the models; each CRD must validate
strictly against the CustomResourceDefinition schema of the oldest and newest Kubernetes versions
the chart supports, and its OpenAPI schema must be structural with bounded strings and lists (the
API server estimates the cost of CEL rules from those bounds).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import crdkit
import kubernetes_validate
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE, ROOT

from tessera.operator import crds, resources
from tessera.operator.resources import common

KINDS = {kind.kind: kind for kind in resources.KINDS}


def test_the_committed_crds_are_what_the_generator_writes() -> None:
    expected = crds.render()
    assert set(expected) == {
        "tessera.dev_oauth2providers.yaml",
        "tessera.dev_applications.yaml",
        "tessera.dev_proxyproviders.yaml",
        "tessera.dev_outposts.yaml",
        "tessera.dev_samlproviders.yaml",
        "tessera.dev_ldapproviders.yaml",
    }
    committed = {path.name: path.read_text() for path in crdkit.CRDS.glob("*.yaml")}
    assert committed == expected, "crds/ is stale: run `make crds`"


def test_the_chart_carries_the_same_crds() -> None:
    chart = {path.name: path.read_text() for path in crdkit.HELM_CRDS.glob("*.yaml")}
    assert chart == crds.render(), "helm/tessera/crds/ is stale: run `make crds`"


def test_the_generator_command_writes_one_file_per_kind(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tessera.operator.crds", str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    for folder in ("a", "b"):
        written = {p.name: p.read_text() for p in (tmp_path / folder).iterdir()}
        assert written == crds.render()
    assert len(result.stdout.splitlines()) == 2 * len(resources.KINDS)


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
@pytest.mark.parametrize("kind", KINDS)
def test_every_crd_validates_strictly_for_the_supported_kubernetes_versions(
    kind: str, kube: str
) -> None:
    kubernetes_validate.validate(crdkit.crds()[kind], kube, strict=True)


def test_the_validator_would_catch_a_misspelt_crd_field() -> None:
    crd = crdkit.crds()["Application"]
    crd["spec"]["versions"][0]["subresource"] = {"status": {}}  # singular: not a CRD field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, NEWEST_KUBE, strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_every_crd_schema_is_structural_with_bounded_strings_and_lists(kind: str) -> None:
    schema = crdkit.openapi_schema(crdkit.crds()[kind], common.VERSION)
    assert schema is not None
    assert crdkit.structural_problems(schema) == []


def test_the_structural_check_finds_what_the_api_server_refuses() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "untyped": {"description": "no type"},
                    "text": {"type": "string"},
                    "list": {"type": "array", "items": {"type": "string", "maxLength": 3}},
                    "mode": {"type": "string", "enum": ["a"], "default": "b"},
                    "either": {
                        "type": "object",
                        "anyOf": [{"type": "object"}],
                        "properties": {"x": {"type": "string", "maxLength": 1}},
                    },
                    "rule": {
                        "type": "string",
                        "maxLength": 1,
                        "x-kubernetes-validations": [{"rule": "self ==", "message": "m"}],
                    },
                },
            },
        },
    }
    problems = "\n".join(crdkit.structural_problems(schema))
    for expected in (
        ".spec: additionalProperties cannot be false",
        ".spec.untyped: no type",
        ".spec.text: a string without maxLength",
        ".spec.list: an array without maxItems",
        ".spec.mode: default does not validate",
        ".spec.either.anyOf: ['type'] are not allowed inside a junctor",
        ".spec.rule: CEL rule 'self ==' does not compile",
        ".metadata: only name and generateName may be restricted",
    ):
        assert expected in problems


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS)
def test_every_crd_has_names_status_and_printer_columns(kind: common.Kind) -> None:
    crd = crdkit.crds()[kind.kind]
    assert crd["metadata"]["name"] == f"{kind.plural}.tessera.dev"
    names = crd["spec"]["names"]
    assert names["categories"] == ["tessera"]
    assert names["shortNames"]
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == ".metadata.creationTimestamp"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for path in columns.values():
        if path.startswith(".status.") and "conditions" not in path:
            assert path.removeprefix(".status.") in status  # the id column shows a status field


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS)
def test_conditions_have_the_metav1_condition_shape(kind: common.Kind) -> None:
    schema = crdkit.openapi_schema(crdkit.crds()[kind.kind], common.VERSION)
    assert schema is not None
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert item["properties"]["observedGeneration"]["format"] == "int64"


def test_no_status_field_is_a_secret() -> None:
    for kind in KINDS:
        schema = crdkit.openapi_schema(crdkit.crds()[kind], common.VERSION)
        assert schema is not None
        fields = [path for path, _ in crdkit.schema_nodes(schema["properties"]["status"])]
        assert len(fields) > 5
        assert not [f for f in fields if "secret" in f.lower() or "password" in f.lower()]


def test_unions_other_than_optional_have_no_structural_form() -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
    }
    with pytest.raises(crds.SchemaError, match=re.escape("only `X | None` unions")):
        crds.structural(schema)
    with pytest.raises(crds.SchemaError, match="no type"):
        crds.structural({"type": "object", "properties": {"x": {"description": "anything"}}})


def test_the_crd_files_are_found_from_the_repository_root() -> None:
    assert crdkit.CRDS == ROOT / "crds"
    assert {p.name for p in crdkit.CRDS.glob("*.yaml")} == set(crds.render())


def test_the_kubernetes_guide_documents_every_field_and_reason() -> None:
    guide = (ROOT / "docs" / "kubernetes.md").read_text()
    for kind in KINDS:
        schema = crdkit.openapi_schema(crdkit.crds()[kind], common.VERSION)
        assert schema is not None
        for section in ("spec", "status"):
            for name in schema["properties"][section]["properties"]:
                assert f"`{name}`" in guide, f"{kind}.{section}.{name}"
    for reason in resources.Reason:
        assert f"`{reason.value}`" in guide, reason
