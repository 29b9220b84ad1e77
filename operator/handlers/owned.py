"""Kubernetes objects a resource owns: written when they differ, never taken from someone else.

`outposts` calls it with the manifests of `tessera.operator.builders.outpost`. `apply` reads the
object, creates it when absent, and otherwise sends a merge patch of the manifest when the object
does not already hold every value of it (fields the API server or a controller added are left
alone, so an unchanged object costs one read). The manifest last written is kept in the
annotation `tessera.dev/last-applied` (not on Secrets: their data stays out of annotations), so
that a field the manifest no longer has (a JSON patch or a setting removed) is removed too: the
patch sets it to null, which a merge patch reads as "delete". An object of that name with
another owner is never touched (`NotOwned`). `served` asks the API server's discovery whether it
serves a kind (the optional ones: ServiceMonitor, Traefik Middleware), which needs no permission
beyond what every authenticated client has.

Failures: the API server refusing a manifest (400, 409, 422) is `Refused`, which names the object
and the API's reason (never the body: a Secret's data must not reach a status); anything else is
`kube.KubeUnavailable` (retried).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tessera.operator.handlers import kube

MERGE = "application/merge-patch+json"
LAST_APPLIED = "tessera.dev/last-applied"
_FIELD_MANAGER = "tessera-operator"


class NotOwned(Exception):
    """An object of the wanted name exists and belongs to someone else; `str()` names it."""


class Refused(Exception):
    """The API server refused the manifest (400/409/422); `str()` names the object and why."""


@dataclasses.dataclass(frozen=True)
class Kind:
    """Where the objects of one kind live in the API."""

    api_version: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = "/api" if "/" not in self.api_version else "/apis"
        base = f"{prefix}/{self.api_version}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{name}" if name else base


PLURALS = {
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
    "Ingress": "ingresses",
    "ServiceMonitor": "servicemonitors",
    "Middleware": "middlewares",
}


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    return Kind(str(manifest["apiVersion"]), PLURALS[str(manifest["kind"])])


def label(manifest: Mapping[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


async def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    what: str,
    body: Any = None,
    content_type: str | None = None,
    query: list[tuple[str, str]] | None = None,
) -> Any:
    """One request; the decoded answer, or None for 404. Refusals: see the module's doc."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    elif body is not None:
        headers["Content-Type"] = "application/json"
    try:
        return await api.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            response_types_map={200: "object", 201: "object", 202: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status in (400, 409, 422):
            raise Refused(f"{what}: the Kubernetes API refused it ({_reason(exc)})") from None
        raise kube.KubeUnavailable(f"{what}: Kubernetes API answered {exc.status}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise kube.KubeUnavailable(f"{what}: {type(exc).__name__}") from None


def _reason(exc: ApiException) -> str:
    """The API's message of a refusal: a Status object's `message`, which names fields, not
    values (bounded; a body that is not a Status is not shown)."""
    try:
        status = json.loads(exc.body or b"{}")
    except (ValueError, TypeError):
        return f"status {exc.status}"
    message = status.get("message") if isinstance(status, dict) else None
    return str(message)[:500] if message else f"status {exc.status}"


def contains(have: Any, want: Any) -> bool:
    """Whether `have` holds every value of `want` (lists element by element, same length)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and contains(have[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(contains(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


async def read(
    api: client.ApiClient, kind: Kind, namespace: str, name: str
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await _call(
        api, "GET", kind.path(namespace, name), f"read {kind.plural}/{name}"
    )
    return found


def with_removals(last: Any, want: Any) -> Any:
    """`want`, with null for each key of `last` (recursively through objects both have) that
    `want` no longer has: the merge patch (RFC 7386) that also removes them. Lists are replaced
    whole by a merge patch, so they need nothing."""
    if not (isinstance(last, Mapping) and isinstance(want, Mapping)):
        return want
    out = dict(want)
    for key, value in last.items():
        out[key] = with_removals(value, want[key]) if key in want else None
    return out


def _recorded(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its own copy in the last-applied annotation (Secrets: as it is)."""
    if manifest["kind"] == "Secret":
        return manifest
    meta = manifest["metadata"]
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    annotations = {**(meta.get("annotations") or {}), LAST_APPLIED: text}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}


def _last_applied(existing: Mapping[str, Any]) -> Any:
    text = ((existing.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


async def apply(api: client.ApiClient, manifest: dict[str, Any], owner_uid: str) -> str:
    """Create or correct the object; what was done: `created`, `updated` or `in sync`."""
    kind = kind_of(manifest)
    meta = manifest["metadata"]
    name, namespace, what = meta["name"], meta["namespace"], label(manifest)
    body = _recorded(manifest)
    existing = await read(api, kind, namespace, name)
    query = [("fieldManager", _FIELD_MANAGER)]
    if existing is None:
        await _call(api, "POST", kind.path(namespace), f"create {what}", body, query=query)
        return "created"
    if not owned_by(existing, owner_uid):
        # SECURITY: a resource names objects in its namespace; it may only change its own.
        raise NotOwned(what)
    if contains(existing, body):
        return "in sync"
    patch = with_removals(_last_applied(existing), body)
    await _call(api, "PATCH", kind.path(namespace, name), f"update {what}", patch, MERGE, query)
    return "updated"


Same = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def _same_data(have: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return dict(have) == dict(want)


async def write_data(
    api: client.ApiClient, manifest: dict[str, Any], owner_uid: str, same: Same = _same_data
) -> str:
    """Create a Secret or ConfigMap, or patch its labels and data when `same(existing data,
    wanted data)` says they differ (keys no longer wanted are removed); `created`, `updated` or
    `in sync`. No last-applied annotation: the data stays out of the metadata."""
    kind = kind_of(manifest)
    meta = manifest["metadata"]
    name, namespace, what = meta["name"], meta["namespace"], label(manifest)
    existing = await read(api, kind, namespace, name)
    query = [("fieldManager", _FIELD_MANAGER)]
    if existing is None:
        await _call(api, "POST", kind.path(namespace), f"create {what}", manifest, query=query)
        return "created"
    if not owned_by(existing, owner_uid):
        # SECURITY: a resource names objects in its namespace; it may only write its own.
        raise NotOwned(what)
    have = existing.get("data") or {}
    labels = meta.get("labels") or {}
    if same(have, manifest["data"]) and contains(existing["metadata"].get("labels") or {}, labels):
        return "in sync"
    data = {**{k: None for k in have}, **manifest["data"]}
    patch = {"metadata": {"labels": labels}, "data": data}
    await _call(api, "PATCH", kind.path(namespace, name), f"update {what}", patch, MERGE, query)
    return "updated"


async def remove(api: client.ApiClient, kind: Kind, namespace: str, name: str, uid: str) -> bool:
    """Delete the object if it exists and is owned by `uid`; whether it was deleted."""
    existing = await read(api, kind, namespace, name)
    if existing is None or not owned_by(existing, uid):
        return False
    await _call(api, "DELETE", kind.path(namespace, name), f"delete {kind.plural}/{name}")
    return True


async def served(api: client.ApiClient, api_version: str, plural: str) -> bool:
    """Whether the API server serves `plural` in `api_version` (its discovery document)."""
    prefix = "/api" if "/" not in api_version else "/apis"
    found = await _call(api, "GET", f"{prefix}/{api_version}", f"discover {api_version}")
    if not isinstance(found, Mapping):
        return False
    names = {r.get("name") for r in found.get("resources") or [] if isinstance(r, Mapping)}
    return plural in names
