"""Tessera's CRDs (crds/) and what the API server does with a custom resource on create or update.

`crd_failures(crd, resource, old)` emulates admission of `resource` by the API server, in its order:
unknown fields (refused, as `kubectl apply` asks by default with strict field validation, or pruned
when `strict=False`), schema defaults, the OpenAPI schema as JSON Schema (jsonschema; list types
`set` and `map` as uniqueness), then the CEL rules (cel-python). Transition rules (those naming
`oldSelf`) run only when `old` is given and holds the same field, as on an update.

`structural_problems(schema)` lists what makes a schema non-structural or unbounded for CEL.

The sample checks of tests/operator/ (`check_good_sample`, `check_refused_by_crd`,
`check_refused_by_model`) hold a sample resource to its kind's CRD in crds/ (`failures`) and to
the operator's model of its spec (`parse`, `SPECS`).
Used by tests/test_examples.py and tests/operator/.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pydantic
import pytest
import yaml
from chartkit import ROOT

from tessera.operator import resources
from tessera.operator.resources import common

CRDS = ROOT / "crds"
HELM_CRDS = ROOT / "helm" / "tessera" / "crds"
GROUP = "tessera.dev"
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def crds(folder: Path = CRDS) -> dict[str, dict[str, Any]]:
    """The tessera.dev CRDs in `folder`, by kind."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        for doc in documents(path):
            if doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["group"] == GROUP:
                found[doc["spec"]["names"]["kind"]] = doc
    return found


def openapi_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return served[0]["schema"]["openAPIV3Schema"] if served else None


# Admission --------------------------------------------------------------------------------------


def _json_schema(node: Any) -> Any:
    """A structural OpenAPI v3 schema as JSON Schema (Kubernetes' extensions turned into checks)."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: _json_schema(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _json_schema(out[key])
    for key in JUNCTORS[:3]:
        if key in out:
            out[key] = [_json_schema(sub) for sub in out[key]]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _unknown_fields(value: Any, schema: dict[str, Any], path: str, prune: bool) -> Iterator[str]:
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        known = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name in list(value):
            if name in known:
                yield from _unknown_fields(value[name], known[name], f"{path}.{name}", prune)
            elif isinstance(extra, dict):
                yield from _unknown_fields(value[name], extra, f"{path}.{name}", prune)
            elif prune:
                del value[name]
            else:
                yield f'{path}: unknown field "{name}"'
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]", prune)


def _defaulted(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _defaulted(value[name], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _defaulted(item, schema["items"])
    return value


def _map_key_failures(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    if isinstance(value, list) and schema.get("x-kubernetes-list-type") == "map":
        keys = [
            tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"])
            for item in value
            if isinstance(item, dict)
        ]
        if len(set(keys)) != len(keys):
            yield f"{path}: duplicate entries for the list-map keys"
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _map_key_failures(value[name], sub, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _map_key_failures(item, schema["items"], f"{path}[{i}]")


def cel_program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel_failures(value: Any, schema: dict[str, Any], path: str, old: Any) -> list[str]:
    failures = []
    for rule in schema.get("x-kubernetes-validations", []):
        activation = {"self": celpy.json_to_cel(value)}
        if "oldSelf" in rule["rule"]:
            if old is None:
                continue  # a transition rule: only evaluated on update, when the old value exists
            activation["oldSelf"] = celpy.json_to_cel(old)
        if not bool(cel_program(rule["rule"]).evaluate(activation)):
            where = path + rule.get("fieldPath", "")
            failures.append(f"{where}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                old_sub = old.get(name) if isinstance(old, dict) else None
                failures += _cel_failures(value[name], sub, f"{path}.{name}", old_sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            failures += _cel_failures(item, schema["items"], f"{path}[{i}]", None)
    return failures


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}


def admitted(crd: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's body as stored: unknown fields pruned, defaults applied."""
    schema = openapi_schema(crd, resource["apiVersion"].split("/")[1])
    assert schema is not None
    body = copy.deepcopy(_body(resource))
    list(_unknown_fields(body, schema, "self", prune=True))
    _defaulted(body, schema)
    return body


def crd_failures(
    crd: dict[str, Any],
    resource: dict[str, Any],
    old: dict[str, Any] | None = None,
    *,
    strict: bool = True,
) -> list[str]:
    """Why the API server would refuse to create `resource` (to update `old` into it when `old` is
    given); empty when it would accept it."""
    schema = openapi_schema(crd, resource["apiVersion"].split("/")[1])
    if schema is None:
        return [f"{resource['apiVersion']} is not served"]
    body = copy.deepcopy(_body(resource))
    failures = list(_unknown_fields(body, schema, "self", prune=not strict))
    body = _defaulted(body, schema)
    validator = jsonschema.Draft202012Validator(_json_schema(schema))
    failures += [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]
    failures += _map_key_failures(body, schema, "self")
    if failures:
        return failures  # the API server skips CEL on values of the wrong type; here, on any error
    old_body = admitted(crd, old) if old is not None else None
    return _cel_failures(body, schema, "self", old_body)


# Structure --------------------------------------------------------------------------------------


def schema_nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`.spec.redirectURIs[]`), junctors left out."""
    yield path or ".", schema
    for name, sub in schema.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from schema_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from schema_nodes(schema["additionalProperties"], f"{path}{{}}")


def _node_problems(path: str, node: dict[str, Any]) -> Iterator[str]:
    if "type" not in node and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        yield f"{path}: no type"
    if "$ref" in node:
        yield f"{path}: $ref is not allowed"
    extra = node.get("additionalProperties")
    if extra is False:
        yield f"{path}: additionalProperties cannot be false"
    if extra is not None and "properties" in node:
        yield f"{path}: additionalProperties and properties are mutually exclusive"
    for junctor in JUNCTORS:
        for sub in node.get(junctor, []) if junctor != "not" else [node.get("not") or {}]:
            bad = {"description", "type", "default", "additionalProperties", "nullable"} & set(sub)
            if bad:
                yield f"{path}.{junctor}: {sorted(bad)} are not allowed inside a junctor"
    if node.get("x-kubernetes-list-type") == "map":
        item = node.get("items", {})
        for key in node.get("x-kubernetes-list-map-keys", []):
            sub = item.get("properties", {}).get(key, {})
            if key not in item.get("required", []) and "default" not in sub:
                yield f"{path}: list-map key {key} is neither required nor defaulted"
    for rule in node.get("x-kubernetes-validations", []):
        try:
            cel_program(rule["rule"])
        except celpy.CELParseError as error:
            yield f"{path}: CEL rule {rule['rule']!r} does not compile: {error}"


def _unbounded(path: str, node: dict[str, Any]) -> Iterator[str]:
    bounded = {"enum", "maxLength"} & set(node) or node.get("format") == "date-time"
    if node.get("type") == "string" and not bounded:
        yield f"{path}: a string without maxLength"
    if node.get("type") == "array" and "maxItems" not in node:
        yield f"{path}: an array without maxItems"


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """What keeps `schema` from being a structural schema with bounded CEL costs; empty if none."""
    problems = []
    for path, node in schema_nodes(schema):
        problems += _node_problems(path, node)
        if path.startswith((".spec", ".status")):
            problems += _unbounded(path, node)
    metadata = schema.get("properties", {}).get("metadata", {})
    if set(metadata.get("properties", {})) - {"name", "generateName"}:
        problems.append(".metadata: only name and generateName may be restricted")
    for path, node in schema_nodes(schema):
        if "default" in node:
            validator = jsonschema.Draft202012Validator(_json_schema(node))
            problems += [
                f"{path}: default does not validate: {e.message}"
                for e in validator.iter_errors(node["default"])
            ]
    return problems


# Samples ----------------------------------------------------------------------------------------

Resource = dict[str, Any]
# The operator's model of each kind's spec.
SPECS: dict[str, type[common.Model]] = {k.kind: k.spec for k in resources.KINDS}


def failures(resource: Resource, old: Resource | None = None) -> list[str]:
    """`crd_failures` of `resource` (an update of `old` into it) under its kind's CRD."""
    return crd_failures(crds()[resource["kind"]], resource, old)


def parse(resource: Resource) -> common.Model:
    """The spec of `resource` as the operator parses it."""
    return SPECS[resource["kind"]].model_validate(resource["spec"])


def check_good_sample(resource: Resource) -> None:
    """A good sample is admitted, and the operator parses it with the CRD's defaults."""
    assert failures(resource) == []
    stored = admitted(crds()[resource["kind"]], resource)["spec"]
    assert parse(resource).to_kube() == stored  # the models' defaults are the CRD's defaults


def check_refused_by_crd(resource: Resource, reason: str) -> None:
    """A bad sample is refused by its CRD, one failure naming `reason`."""
    found = failures(resource)
    assert found, "admitted"
    assert any(reason in f for f in found), found


def check_refused_by_model(resource: Resource) -> None:
    """A bad sample is refused by the operator's model too: never laxer than the CRD."""
    with pytest.raises(pydantic.ValidationError):
        parse(resource)
