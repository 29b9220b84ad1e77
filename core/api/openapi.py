"""The OpenAPI 3 document at `/api/v3/schema/`, generated from the resources' pydantic models.

The same models validate requests, so the document cannot drift from the behaviour.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema

from tessera.core import wire
from tessera.core.api import resource

REF = "#/components/schemas/{model}"
VERSION = "0.1.0"


def _ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors() -> dict[str, Any]:
    generic = _json(_ref(wire.common.ErrorDetail))
    return {
        "400": {"description": "Invalid input", **_json(_ref(wire.common.ValidationErrorBody))},
        "401": {"description": "Not authenticated", **generic},
        "403": {"description": "Permission denied", **generic},
        "413": {"description": "Body too large", **generic},
        "415": {"description": "Unsupported media type", **generic},
        "503": {"description": "Store unavailable", **generic},
    }


def _param(name: str, kind: str, description: str = "", *, where: str = "query") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "str": {"type": "string"},
        "int": {"type": "integer"},
        "bool": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
        "uuid": {"type": "string", "format": "uuid"},
    }[kind]
    out = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    if description:
        out["description"] = description
    return out


def _list_params(r: resource.Resource) -> list[dict[str, Any]]:
    params = [
        _param("page", "int", "A page number within the paginated result set."),
        _param("page_size", "int", "Number of results to return per page (max 100)."),
        _param("search", "str", "A search term."),
        _param("ordering", "str", "Which field to use when ordering the results."),
    ]
    params += [_param(f.name, f.kind, f.description) for f in r.filters]
    params += [_param(name, kind, description) for name, kind, description in r.list_params]
    return params


def _operations(r: resource.Resource, models: set[type[pydantic.BaseModel]]) -> dict[str, Any]:
    base = f"/{r.path}/"
    detail = base + "{" + r.lookup + "}/"
    lookup = [_param(r.lookup, "str" if r.alternate_lookup else r.lookup_kind, where="path")]
    name = r.read_model.__name__
    models.add(r.read_model)
    ops: dict[str, Any] = {base: {}, detail: {}}
    errors = _errors()
    paginated = {
        "type": "object",
        "required": ["pagination", "results", "autocomplete"],
        "properties": {
            "pagination": _ref(wire.common.Pagination),
            "results": {"type": "array", "items": _ref(r.read_model)},
            "autocomplete": {"type": "object"},
        },
    }
    ops[base]["get"] = {
        "operationId": f"{r.path.replace('/', '_')}_list",
        "tags": [r.tag],
        "parameters": _list_params(r),
        "responses": {"200": {"description": f"A page of {name}", **_json(paginated)}, **errors},
    }
    not_found = {"404": {"description": "Not found", **_json(_ref(wire.common.ErrorDetail))}}
    if not r.allow_retrieve:
        del ops[detail]  # a listing only: no detail path (and no writes), but its actions
        _action_operations(r, ops, models, lookup)
        return ops
    ops[detail]["get"] = {
        "operationId": f"{r.path.replace('/', '_')}_retrieve",
        "tags": [r.tag],
        "parameters": lookup,
        "responses": {
            "200": {"description": name, **_json(_ref(r.read_model))},
            **errors,
            **not_found,
        },
    }
    if r.request_model is not None:
        models.add(r.request_model)
        body = {"required": True, **_json(_ref(r.request_model))}
        patched = {
            "required": True,
            **_json({"$ref": REF.format(model="Patched" + r.request_model.__name__)}),
        }
        write = {
            "tags": [r.tag],
            "responses": {
                "200": {"description": name, **_json(_ref(r.read_model))},
                **errors,
                **not_found,
            },
        }
        op = r.path.replace("/", "_")
        if r.allow_create:
            ops[base]["post"] = {
                "operationId": f"{op}_create",
                "tags": [r.tag],
                "requestBody": body,
                "responses": {"201": {"description": name, **_json(_ref(r.read_model))}, **errors},
            }
        if r.allow_put:
            ops[detail]["put"] = {
                **write,
                "operationId": f"{op}_update",
                "parameters": lookup,
                "requestBody": body,
            }
        ops[detail]["patch"] = {
            **write,
            "operationId": f"{op}_partial_update",
            "parameters": lookup,
            "requestBody": patched,
        }
    if r.request_model is not None or r.allow_delete:
        ops[detail]["delete"] = {
            "operationId": f"{r.path.replace('/', '_')}_destroy",
            "tags": [r.tag],
            "parameters": lookup,
            "responses": {"204": {"description": "Deleted"}, **errors, **not_found},
        }
    _action_operations(r, ops, models, lookup)
    return ops


def _action_operations(
    r: resource.Resource,
    ops: dict[str, Any],
    models: set[type[pydantic.BaseModel]],
    lookup: list[dict[str, Any]],
) -> None:
    """Add the operations of `r`'s actions to `ops`."""
    base = f"/{r.path}/"
    detail = base + "{" + r.lookup + "}/"
    errors = _errors()
    not_found = {"404": {"description": "Not found", **_json(_ref(wire.common.ErrorDetail))}}
    for a in r.actions():
        path = (detail if a.detail else base) + f"{a.name}/"
        op_name = f"{r.path}_{a.name}".replace("/", "_")
        op_doc: dict[str, Any] = {
            "operationId": f"{op_name}_{a.method.lower()}",
            "tags": [r.tag],
            "summary": a.summary,
            "parameters": (lookup if a.detail else [])
            + [_param(name, kind, description) for name, kind, description in a.params],
            "responses": {**errors, **(not_found if a.detail else {})},
        }
        if a.request is not None:
            models.add(a.request)
            op_doc["requestBody"] = {
                "required": True,
                "content": {a.content_type: {"schema": _ref(a.request)}},
            }
        if a.response is not None:
            models.add(a.response)
            schema: dict[str, Any] = _ref(a.response)
            if a.many:
                schema = {"type": "array", "items": schema}
            op_doc["responses"][str(a.status)] = {"description": "OK", **_json(schema)}
        else:
            op_doc["responses"][str(a.status)] = {"description": "Done"}
        ops.setdefault(path, {})[a.method.lower()] = op_doc


def _patched(schema: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out.pop("required", None)
    out["title"] = "Patched" + out.get("title", "")
    return out


def document(
    resources: list[resource.Resource],
    extra_models: list[type[pydantic.BaseModel]],
    extra_paths: dict[str, Any] | None = None,
    extra_schemas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The document of `resources`, plus hand-described `extra_paths` (which may refer to
    `extra_models` and `extra_schemas`, unions of models, by `#/components/schemas/<name>`)."""
    models: set[type[pydantic.BaseModel]] = {
        wire.common.Pagination,
        wire.common.ErrorDetail,
        wire.common.ValidationErrorBody,
        wire.root.Config,
        *extra_models,
    }
    paths: dict[str, Any] = {}
    for r in resources:
        paths.update(_operations(r, models))
    paths["/root/config/"] = {
        "get": {
            "operationId": "root_config_retrieve",
            "tags": ["root"],
            "security": [{}],
            "responses": {"200": {"description": "Configuration", **_json(_ref(wire.root.Config))}},
        }
    }
    for path, operations in (extra_paths or {}).items():
        for operation in operations.values():
            operation.setdefault("parameters", [])
            operation["responses"] = {**_errors(), **operation["responses"]}
        paths[path] = operations
    ordered = sorted(models, key=lambda m: m.__name__)
    modes = [
        (m, "validation" if issubclass(m, wire.common.Request) else "serialization")
        for m in ordered
    ]
    _, defs = models_json_schema(modes, ref_template=REF)  # type: ignore[arg-type]
    schemas = {**defs.get("$defs", {}), **(extra_schemas or {})}
    for r in resources:
        if r.request_model is not None:
            name = r.request_model.__name__
            schemas["Patched" + name] = _patched(schemas[name])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera",
            "version": VERSION,
            "description": "Tessera's admin API (authentik-compatible)",
        },
        "servers": [{"url": "/api/v3"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"authentik": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"authentik": []}],
    }
