"""authentik's own generated API client (`authentik-client`, from the lock) as the judge of shapes.

authentik generates its Python client from its OpenAPI schema; scripts, MCP servers and sync tools
use it. Two uses here:

- `operation(method, path)` finds the client's method for one of Tessera's `/api/v3` operations
  (matched on method and path, path parameter names aside), so a test can drive Tessera through
  the very code those tools run.
- `differences(document)` compares Tessera's OpenAPI document with the client's pydantic models,
  operation by operation: field names, required lists, types (with `uuid` and `date-time`
  formats), enum values and nested objects. The installed package is the reference; nothing of
  authentik's is copied into the repository.
- A union of objects (the flow executor's `ChallengeTypes`, `FlowChallengeResponseRequest`) is
  compared variant by variant, matched on `component` (the discriminator: a `const` or the
  default of the variant's `component` field). The generated client spells a oneOf as a model
  holding `actual_instance`; `_client_schema` turns it back into the oneOf it stands for.
- `challenge_model(data)` picks the client's model for a challenge by its `component`, as the
  discriminator says (the generated `ChallengeTypes.from_json` tries every variant and refuses
  the many that fit, so no client parses a challenge through it).

Rules (what "the same shape" means for a client that parses responses and sends requests):
- a response has every field the client's model declares and no other (`EXTENSIONS` aside);
  every field the client requires is always sent, and never `null` where the client forbids it;
  an enum only takes values the client knows;
- a request accepts every field the client's request model declares, requires none the client
  does not require, and takes the client's types and enum values;
- in a union, each of Tessera's variants is one of the client's (same `component`) and has its
  shape; the client may know more variants (challenges Tessera never sends).
"""

from __future__ import annotations

import asyncio
import functools
import http.cookies
import inspect
import json
import re
import typing
from collections.abc import Iterator
from typing import Any

import authentik_client
import pydantic
from authentik_client import api as client_api

# Fields Tessera adds to authentik's objects, on purpose: the client ignores unknown fields.
EXTENSIONS = {
    # The Kubernetes resource that owns the object: the operator's claim (see `resource.py`).
    "managed",
}
_PATH_PARAM = re.compile(r"\{[^}]+\}")
_SERIALIZER = re.compile(
    r"def _(\w+)_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'", re.DOTALL
)
FORMATS = {"uuid", "date-time"}


def normalize(path: str) -> str:
    return _PATH_PARAM.sub("{}", path)


@functools.cache
def operations() -> dict[tuple[str, str], tuple[type[Any], str]]:
    """(METHOD, normalized path) -> (API class, method name), read off the installed client."""
    out: dict[tuple[str, str], tuple[type[Any], str]] = {}
    for name in dir(client_api):
        cls = getattr(client_api, name)
        if not (isinstance(cls, type) and name.endswith("Api")):
            continue
        for match in _SERIALIZER.finditer(inspect.getsource(cls)):
            method_name, method, path = match.groups()
            out[(method, normalize(path))] = (cls, method_name)
    return out


def operation(method: str, path: str) -> tuple[type[Any], str] | None:
    return operations().get((method.upper(), normalize(path)))


def configuration(base_url: str, token: str | None) -> authentik_client.Configuration:
    return authentik_client.Configuration(host=f"{base_url.rstrip('/')}/api/v3", access_token=token)


def _models_of(cls: type[Any], name: str) -> tuple[type[pydantic.BaseModel] | None, list[Any]]:
    hints = typing.get_type_hints(getattr(cls, name))
    ret = hints.pop("return", None)
    response = ret if isinstance(ret, type) and issubclass(ret, pydantic.BaseModel) else None
    bodies = [
        model
        for param, ann in hints.items()
        if param.endswith("request") and (model := _body_model(ann)) is not None
    ]
    return response, bodies


def _body_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The model of a body parameter, `Optional[...]` unwrapped (partial updates' bodies)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


class _Schemas:
    """Resolves `$ref`s in one side's schemas (Tessera's components, or a client model's defs)."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def get(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
        return schema


def _variants(schema: dict[str, Any], side: _Schemas) -> list[dict[str, Any]]:
    """A schema's alternatives, `$ref`s resolved (`anyOf`, `oneOf`, type lists, one `allOf`)."""
    schema = side.get(schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [v for alt in schema[key] for v in _variants(alt, side)]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _variants(schema["allOf"][0], side)
    kind = schema.get("type")
    if isinstance(kind, list):
        return [{**schema, "type": t} for t in kind]
    return [schema]


def _label(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "any")
    if "enum" in schema and kind == "any":
        kind = "string" if all(isinstance(v, str) for v in schema["enum"]) else "any"
    if schema.get("format") in FORMATS:
        kind += f":{schema['format']}"
    if "properties" in schema:
        kind = "object"
    return str(kind)


def _component(schema: dict[str, Any]) -> str | None:
    """The `component` a union's variant stands for: its `const`, single enum value or default."""
    prop = schema.get("properties", {}).get("component", {})
    if isinstance(prop.get("const"), str):
        return str(prop["const"])
    if isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1:
        return str(prop["enum"][0])
    return str(prop["default"]) if isinstance(prop.get("default"), str) else None


class Comparison:
    def __init__(self, tessera: _Schemas, client: _Schemas) -> None:
        self.tessera, self.client = tessera, client
        self.out: list[str] = []
        self._seen: set[tuple[int, int, bool]] = set()

    def model(
        self, where: str, ours: dict[str, Any], theirs: dict[str, Any], request: bool
    ) -> None:
        key = (id(ours), id(theirs), request)
        if key in self._seen:
            return
        self._seen.add(key)
        mine, other = ours.get("properties", {}), theirs.get("properties", {})
        required, client_required = set(ours.get("required", [])), set(theirs.get("required", []))
        for name in sorted(set(other) - set(mine)):
            self.out.append(f"{where}: missing field {name!r}")
        for name in sorted(set(mine) - set(other) - EXTENSIONS):
            self.out.append(f"{where}: field {name!r} is not authentik's")
        if request:
            if extra := sorted(required - client_required):
                self.out.append(f"{where}: requires {extra}, which the client may leave out")
        elif missing := sorted(client_required - required):
            self.out.append(f"{where}: may leave out {missing}, which the client requires")
        for name in sorted(set(mine) & set(other)):
            nullable_ok = request or name not in client_required
            self.value(f"{where}.{name}", mine[name], other[name], request, nullable_ok)

    def value(
        self,
        where: str,
        ours: dict[str, Any],
        theirs: dict[str, Any],
        request: bool,
        nullable: bool,
    ) -> None:
        mine, other = _variants(ours, self.tessera), _variants(theirs, self.client)
        labels, client_labels = {_label(v) for v in mine}, {_label(v) for v in other}
        if "null" in labels - client_labels and not nullable:
            self.out.append(f"{where}: may be null, which the client refuses")
        labels.discard("null")
        client_labels.discard("null")
        if client_labels <= {"any"}:
            return
        if labels != client_labels:
            ours_text, theirs_text = " | ".join(sorted(labels)), " | ".join(sorted(client_labels))
            self.out.append(f"{where}: {ours_text or 'null'} where the client has {theirs_text}")
            return
        for label in labels:
            ours_all = [v for v in mine if _label(v) == label]
            theirs_all = [v for v in other if _label(v) == label]
            if label == "object" and max(len(ours_all), len(theirs_all)) > 1:
                self._one_of(where, ours_all, theirs_all, request)
                continue
            self._same_kind(where, label, ours_all[0], theirs_all[0], request)

    def _one_of(
        self,
        where: str,
        ours: list[dict[str, Any]],
        theirs: list[dict[str, Any]],
        request: bool,
    ) -> None:
        """Each of our variants against the client's of the same `component`."""
        client: dict[str, dict[str, Any]] = {}
        for variant in theirs:
            if (name := _component(variant)) is None:
                self.out.append(f"{where}: a variant of the client's union has no component")
                return
            client[name] = variant
        seen: set[str] = set()
        for variant in ours:
            name = _component(variant)
            if name is None:
                self.out.append(f"{where}: a variant without a component")
            elif name in seen:
                self.out.append(f"{where}: two variants for component {name!r}")
            elif name not in client:
                self.out.append(f"{where}: component {name!r} is not one of the client's")
            else:
                seen.add(name)
                self.model(f"{where}<{name}>", variant, client[name], request)

    def _same_kind(
        self, where: str, label: str, ours: dict[str, Any], theirs: dict[str, Any], request: bool
    ) -> None:
        if "enum" in theirs:
            values, client_values = set(ours.get("enum", [])), set(theirs["enum"]) - {None}
            if not ours.get("enum"):
                self.out.append(
                    f"{where}: any {label} where the client has the enum {sorted(client_values)}"
                )
            elif unknown := sorted(values - client_values - {None}, key=str):
                self.out.append(f"{where}: enum values {unknown} the client does not know")
        if label == "array":
            self.value(f"{where}[]", ours.get("items", {}), theirs.get("items", {}), request, False)
        elif label == "object" and "properties" in theirs:
            self.model(where, ours, theirs, request)


def _client_schema(model: type[pydantic.BaseModel]) -> tuple[dict[str, Any], _Schemas]:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    defs = schema.pop("$defs", {})
    for found in (schema, *defs.values()):
        _as_generated(found)
    return schema, _Schemas(defs)


def _as_generated(schema: dict[str, Any]) -> None:
    """The schema the client was generated from, in place: a oneOf wrapper (`actual_instance`)
    back to its oneOf, and a model's catch-all `additional_properties` field back to
    `additionalProperties` (the prompt stage's answers)."""
    props = schema.get("properties", {})
    if "actual_instance" in props and "one_of_schemas" in props:
        variants = props["actual_instance"].get("anyOf", [props["actual_instance"]])
        schema.clear()
        schema["oneOf"] = [v for v in variants if v.get("type") != "null"]
    elif "additional_properties" in props:
        del props["additional_properties"]
        schema["additionalProperties"] = True


def _json_schema(operation: dict[str, Any], *statuses: str) -> dict[str, Any] | None:
    for status in statuses:
        content = operation.get("responses", {}).get(status, {}).get("content", {})
        if schema := content.get("application/json", {}).get("schema"):
            return dict(schema)
    return None


def differences(document: dict[str, Any]) -> dict[str, list[str]]:
    """`"METHOD /path/"` -> how Tessera's shapes differ from the client's models (empty: none)."""
    tessera = _Schemas(document["components"]["schemas"])
    out: dict[str, list[str]] = {}
    for path, methods in sorted(document["paths"].items()):
        for method, op in methods.items():
            key = f"{method.upper()} {path}"
            found = operation(method, path)
            if found is None:
                out[key] = ["not an operation of authentik's API"]
                continue
            response, bodies = _models_of(*found)
            found_diffs: list[str] = []
            ours = _json_schema(op, "200", "201")
            if response is not None and ours is not None:
                theirs, client = _client_schema(response)
                comparison = Comparison(tessera, client)
                comparison.value("response", ours, theirs, False, False)
                found_diffs += comparison.out
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            for model in bodies[:1]:
                theirs, client = _client_schema(model)
                comparison = Comparison(tessera, client)
                if "schema" in body:
                    comparison.value("request", body["schema"], theirs, True, False)
                else:
                    comparison.out.append("request: takes no JSON body, the client sends one")
                found_diffs += comparison.out
            out[key] = found_diffs
    return out


def report(diffs: dict[str, list[str]]) -> Iterator[str]:
    for key, lines in diffs.items():
        for line in lines:
            yield f"{key}: {line}"


class Driver:
    """Calls Tessera through the client: `await driver.call("GET", "core/users", lookup=5)`.

    The client is synchronous (urllib3): each call runs in a thread, beside the test's server.
    Returns the client's parsed model; a refused parse raises as it would in a user's script.
    """

    def __init__(self, base_url: str, token: str) -> None:
        self.client = authentik_client.ApiClient(configuration(base_url, token))

    def method(self, method: str, path: str, *, detail: bool, action: str = "") -> Any:
        template = f"/{path}/" + ("{}/" if detail else "") + (f"{action}/" if action else "")
        found = operation(method, template)
        if found is None:
            raise LookupError(f"{method} {template} is not an operation of authentik's API")
        cls, name = found
        return getattr(cls(self.client), name)

    async def call(
        self,
        method: str,
        path: str,
        *,
        lookup: Any = None,
        body: dict[str, Any] | None = None,
        action: str = "",
        **params: Any,
    ) -> Any:
        fn = self.method(method, path, detail=lookup is not None, action=action)
        args: list[Any] = [] if lookup is None else [lookup]
        kwargs = dict(params)
        if body is not None:
            name, model = request_parameter(fn)
            # As a script builds it (`PatchedXRequest(field=...)`): only the fields given are
            # sent. (`from_dict` marks every field as given, so a PATCH would null the others.)
            kwargs[name] = model.model_validate(body)
        return await asyncio.to_thread(fn, *args, **kwargs)


def _variants_by_component(union: type[pydantic.BaseModel]) -> dict[str, type[Any]]:
    """component -> model, for the variants of one of the client's oneOf wrappers."""
    annotation = union.model_fields["actual_instance"].annotation
    members = [m for arg in typing.get_args(annotation) for m in typing.get_args(arg) or [arg]]
    return {
        str(m.model_fields["component"].default): m
        for m in members
        if isinstance(m, type) and issubclass(m, pydantic.BaseModel)
    }


@functools.cache
def challenge_models() -> dict[str, type[Any]]:
    """component -> the client's challenge model (the variants of `ChallengeTypes`)."""
    return _variants_by_component(authentik_client.ChallengeTypes)


@functools.cache
def answer_models() -> dict[str, type[Any]]:
    """component -> the client's answer model (the variants of `FlowChallengeResponseRequest`)."""
    return _variants_by_component(authentik_client.FlowChallengeResponseRequest)


def challenge(data: dict[str, Any]) -> Any:
    """The client's model of a challenge, picked by `component` and parsed by that model (its
    `from_dict`, as the generated client parses any object), wrapped in `ChallengeTypes` as the
    executor's operations return it; its `actual_instance` is the challenge."""
    model = challenge_models()[data["component"]]
    parsed = model.from_dict(data)
    return authentik_client.ChallengeTypes(actual_instance=parsed)


def answer(component: str, **fields: Any) -> Any:
    """An answer as a script builds it: the client's model for `component`, in the union the
    executor's `solve` takes."""
    model = answer_models()[component]
    return authentik_client.FlowChallengeResponseRequest(actual_instance=model(**fields))


class FlowDriver:
    """Runs a flow through the client's `FlowsApi`, as a script or a headless login tool does:
    `flows_executor_get` for the current challenge, `flows_executor_solve` with an answer.

    The generated methods that parse would refuse every challenge (`ChallengeTypes.from_json`
    finds several variants that fit most bodies), so the driver calls their
    `_without_preload_content` twins, exactly the same requests, and parses each reply with
    `challenge`. Cookies are kept between calls (the flow state hangs on the session cookie), and
    the CSRF header follows the CSRF cookie, as authentik's web interface sends it."""

    def __init__(self, base_url: str, query: str = "") -> None:
        self.client = authentik_client.ApiClient(configuration(base_url, None))
        self.flows = authentik_client.FlowsApi(self.client)
        self.query = query
        self.cookies: dict[str, str] = {}
        self.replies: list[dict[str, Any]] = []  # every challenge as sent, for assertions

    def _keep(self, response: Any) -> dict[str, Any]:
        assert response.status == 200, (response.status, response.data)
        for header in response.headers.getlist("Set-Cookie"):
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        self.client.cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None
        data: dict[str, Any] = json.loads(response.data)
        self.replies.append(data)
        return data

    def _headers(self) -> dict[str, str]:
        csrf = self.cookies.get("authentik_csrf")
        return {"X-authentik-CSRF": csrf} if csrf else {}

    async def get(self, slug: str) -> Any:
        """The current challenge, as the client's model."""
        response = await asyncio.to_thread(
            self.flows.flows_executor_get_without_preload_content,
            slug,
            self.query,
            _headers=self._headers(),
        )
        return challenge(self._keep(response)).actual_instance

    async def solve(self, slug: str, component: str, **fields: Any) -> Any:
        """Answer the current challenge; the next one, as the client's model."""
        response = await asyncio.to_thread(
            self.flows.flows_executor_solve_without_preload_content,
            slug,
            self.query,
            flow_challenge_response_request=answer(component, **fields),
            _headers=self._headers(),
        )
        return challenge(self._keep(response)).actual_instance


def request_parameter(fn: Any) -> tuple[str, type[Any]]:
    """The name and model of a client method's JSON body parameter."""
    hints = typing.get_type_hints(fn)
    for name, ann in hints.items():
        if name.endswith("request") and (model := _body_model(ann)) is not None:
            return name, model
    raise LookupError(f"{fn.__name__} takes no JSON body")
