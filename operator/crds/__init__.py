"""CustomResourceDefinitions generated from the resource models (`tessera.operator.resources`).

`python -m tessera.operator.crds [DIR ...]` (and `make crds`) writes one YAML file per kind into
each DIR (default `crds`); tests compare the committed files with `render()`. The pydantic JSON
schema of each spec and status is turned into a structural OpenAPI v3 schema as the API server
wants it: references inlined, optional fields as plain (not nullable) properties, no titles, no
`additionalProperties: false` (the API server prunes or, with strict field validation, refuses
unknown fields), and the models' `x-kubernetes-*` extensions kept. A node may lack a type only
when it keeps any value (`x-kubernetes-preserve-unknown-fields`, e.g. a JSON patch's `value`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tessera.operator import resources
from tessera.operator.resources import common

HEADER = (
    "# Generated from tessera.operator.resources by `python -m tessera.operator.crds`:\n"
    "# do not edit by hand.\n"
)
# The order of keys in a schema node, for readable YAML; other keys follow in the model's order.
KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "items",
    "additionalProperties",
)
DROPPED = frozenset({"title"})


class SchemaError(ValueError):
    """A model whose JSON schema has no structural equivalent (e.g. a union of two types)."""


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 form of a pydantic JSON schema."""
    return _node(schema, schema.get("$defs", {}), "<root>")


def _node(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = _flatten(node, defs, where)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or key == "$defs" or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "description":
            out[key] = _prose(value)
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _node(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _node(value, defs, f"{where}[]")
        elif key in ("anyOf", "oneOf", "allOf", "not", "$ref"):
            raise SchemaError(f"{where}: {key} has no structural form here")
        else:
            out[key] = value
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{where}: no type")
    return _ordered(out)


def _flatten(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """Inline a `$ref` and reduce `anyOf: [X, null]` (an optional field) to X."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_flatten(target, defs, where), **node}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1 or len(branches) == len(node["anyOf"]):
            raise SchemaError(f"{where}: only `X | None` unions have a structural form")
        del node["anyOf"]
        node = {**_flatten(branches[0], defs, where), **node}
    return node


def _prose(text: str) -> str:
    """A docstring as flowing text: paragraphs kept, line breaks and indentation dropped."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    first = [k for k in KEY_ORDER if k in node]
    return {k: node[k] for k in [*first, *(k for k in node if k not in KEY_ORDER)]}


def _model_schema(model: type[common.Model]) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def crd(kind: common.Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of `kind`."""
    root = {
        "description": kind.description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _model_schema(kind.spec),
            "status": _model_schema(kind.status),
        },
    }
    version = {
        "name": common.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [_column(c) for c in kind.columns],
        "schema": {"openAPIV3Schema": root},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "tessera"}},
        "spec": {
            "group": common.GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [common.CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def _column(column: common.Column) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": column.name,
        "type": column.type,
        "jsonPath": column.json_path,
        "description": column.description,
    }
    if column.priority:
        out["priority"] = column.priority
    return out


def file_name(kind: common.Kind) -> str:
    return f"{common.GROUP}_{kind.plural}.yaml"


class _Dumper(yaml.SafeDumper):
    """Writes a schema node shared by several fields (one model used twice) out in full each
    time: no YAML anchors and aliases, which readers of a CRD do not expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> dict[str, str]:
    """Every CRD file: name → YAML text."""
    return {
        file_name(kind): HEADER
        + yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=False)
        for kind in resources.KINDS
    }


def write(folder: Path) -> list[Path]:
    """Write every CRD file into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
