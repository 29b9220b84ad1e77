"""The operator's few Kubernetes calls besides Kopf's own: Secrets and the provider resources.

The handlers call it to read a `clientSecretRef`, to write a credentials Secret (created owned by
its resource, then patched only when its data differs), and to read the `OAuth2Provider` an
`Application` points at. It finds the cluster as kubectl does: in-cluster service account first,
else `$KUBECONFIG` (or `~/.kube/config`). Secret values never leave this module in an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import aiohttp
import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

MANAGED_BY = {"app.kubernetes.io/managed-by": "tessera-operator"}
# SECURITY: kubernetes_asyncio logs every response body at DEBUG, Secret data included; its
# REST logger never goes below INFO, whatever the operator's log level.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)


class KubeUnavailable(Exception):
    """The Kubernetes API did not answer, refused the operator, or answered 5xx."""


class SecretConflict(Exception):
    """The credentials Secret exists and does not belong to this resource."""


class MissingKey(Exception):
    """The Secret exists but lacks the key (or its value is not text)."""


async def connect() -> client.ApiClient:
    """An API client for the cluster this process runs in, or the kubeconfig's current context."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        await config.load_kube_config(
            config_file=path, client_configuration=cfg, persist_config=False
        )
    return client.ApiClient(configuration=cfg)


def _unavailable(exc: Exception, what: str) -> KubeUnavailable:
    status = getattr(exc, "status", None)
    return KubeUnavailable(f"{what}: Kubernetes API answered {status or type(exc).__name__}")


@contextlib.contextmanager
def _answered(what: str) -> Iterator[None]:
    """Any refusal by the API or failure to reach it inside becomes KubeUnavailable (`what` names
    the call). The cause is dropped: an API error's body may carry Secret data."""
    try:
        yield
    except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise _unavailable(exc, what) from None


class _AbsentOk:
    """Swallows the API's 404, so the line after the `with` answers for an absent object.

    Placed inside `_answered` (`with _answered(...), _AbsentOk():`), any other error still maps.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return isinstance(exc, ApiException) and exc.status == 404


async def read_secret(api: client.ApiClient, namespace: str, name: str) -> Any | None:
    with _answered(f"read Secret {name}"), _AbsentOk():
        return await client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    return None


async def secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str | None:
    """The text under `key` of Secret `name`; None when the Secret is absent."""
    secret = await read_secret(api, namespace, name)
    if secret is None:
        return None
    raw = (secret.data or {}).get(key)
    if raw is None:
        raise MissingKey(key)
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise MissingKey(key) from None


def _owned_by(secret: Any, uid: str) -> bool:
    refs = secret.metadata.owner_references or []
    return any(ref.uid == uid for ref in refs)


def secret_manifest(
    owner: kopf.Body, name: str, data: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, Any]:
    """The credentials Secret as a manifest, owned by `owner` (garbage-collected with it)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "labels": {**MANAGED_BY, **labels}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }
    kopf.adopt(body, owner=owner)
    return body


async def write_secret(api: client.ApiClient, manifest: dict[str, Any]) -> bool:
    """Create the Secret, or patch its data when it differs. True when something was written.

    A Secret of that name not owned by the manifest's owner is never touched (SecretConflict):
    a resource must not overwrite a Secret it did not create.
    """
    meta = manifest["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["ownerReferences"][0]["uid"]
    core = client.CoreV1Api(api)
    existing = await read_secret(api, namespace, name)
    with _answered(f"write Secret {name}"):
        if existing is None:
            await core.create_namespaced_secret(namespace, cast(Any, manifest))
            return True
        if not _owned_by(existing, uid):
            # SECURITY: a resource names any Secret in its namespace; it may only write its own.
            raise SecretConflict(name)
        if (existing.data or {}) == manifest["data"] and existing.type == manifest["type"]:
            return False
        patch = {"metadata": {"labels": meta["labels"]}, "data": _with_removals(existing, manifest)}
        await core.patch_namespaced_secret(name, namespace, patch)
        return True


def _with_removals(existing: Any, manifest: dict[str, Any]) -> dict[str, str | None]:
    data: dict[str, str | None] = dict(manifest["data"])
    for key in existing.data or {}:
        data.setdefault(key, None)  # a merge patch removes keys set to null
    return data


async def read_custom(
    api: client.ApiClient, group: str, version: str, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    with _answered(f"read {plural} {name}"), _AbsentOk():
        found: dict[str, Any] = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            group, version, namespace, plural, name
        )
        return found
    return None


async def list_custom(
    api: client.ApiClient, group: str, version: str, plural: str, namespace: str
) -> list[dict[str, Any]]:
    """The custom resources of a kind in a namespace."""
    with _answered(f"list {plural}"):
        found = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            group, version, namespace, plural
        )
    return [item for item in found.get("items") or [] if isinstance(item, dict)]


async def annotate_custom(
    api: client.ApiClient,
    group: str,
    version: str,
    plural: str,
    namespace: str,
    name: str,
    annotations: Mapping[str, str],
) -> bool:
    """Merge `annotations` into a custom resource's metadata; False when it no longer exists."""
    body = {"metadata": {"annotations": dict(annotations)}}
    with _answered(f"annotate {plural} {name}"), _AbsentOk():
        # A dict body would go as a JSON patch (the client's first content type): say merge.
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(  # type: ignore[call-arg]
            group,
            version,
            namespace,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )
        return True
    return False
