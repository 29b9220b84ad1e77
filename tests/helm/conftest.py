"""Rendering the Helm chart with a real Helm (helm-python-sdk embeds the Helm 4 SDK, offline).

`render(values)` returns the rendered objects as dicts; every test builds the values it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import helm_python
import pytest
import yaml
from chartkit import CHART, NAMESPACE, RELEASE, Rendered


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    loaded = helm_python.Chart.load(str(CHART))
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def render_files(chart: helm_python.Chart) -> Callable[[dict[str, Any]], dict[str, str]]:
    def go(values: dict[str, Any]) -> dict[str, str]:
        files: dict[str, str] = chart.render(values, name=RELEASE, namespace=NAMESPACE)
        return files

    return go


@pytest.fixture(scope="session")
def render(
    render_files: Callable[[dict[str, Any]], dict[str, str]],
) -> Callable[[dict[str, Any]], list[Rendered]]:
    """The objects Helm renders for `values` (NOTES.txt left out)."""

    def go(values: dict[str, Any]) -> list[Rendered]:
        objects: list[Rendered] = []
        for path, text in sorted(render_files(values).items()):
            if path.endswith(".txt"):
                continue
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return objects

    return go
