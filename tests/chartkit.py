"""The Helm chart under test (helm/tessera): where it is, the values files, and object lookups.

tests/helm/conftest.py renders it; tests/helm and tests/test_examples.py use these helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "tessera"
EXTERNAL_VALUES = ROOT / "tests" / "helm" / "values-external.yaml"
RELEASE = "rel"
NAMESPACE = "idp"

# The Kubernetes versions the chart supports (Chart.yaml kubeVersion: CEL rules are GA from 1.29),
# up to the newest schema kubernetes-validate ships.
OLDEST_KUBE = "1.29.0"
NEWEST_KUBE = "1.37.0"

Rendered = dict[str, Any]


def external_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(EXTERNAL_VALUES.read_text())
    return values


def find(objects: list[Rendered], kind: str, name: str) -> Rendered:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def pod_specs(objects: list[Rendered]) -> dict[str, Rendered]:
    """The pod spec of every Deployment, StatefulSet and Job (the hooks), by object name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }
