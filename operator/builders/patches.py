"""RFC 6902 patches of the generated objects (`Outpost.spec.jsonPatches`, authentik's
`kubernetes_json_patches`), applied by `tessera.operator.handlers.outposts` after `build`.

A patch that cannot apply (a path that is not there, a failed `test`) or that would change what
an object is (apiVersion, kind, name, namespace, owner) raises `PatchError`, whose message names
the operation (`spec.jsonPatches.deployment[2]: ...`); the resource then reports `InvalidSpec`
and nothing of that reconcile is written.

The Deployment's pod keeps its privileges as generated (`_pod_guard`): the right to create an
Outpost is not the right to run a pod with another service account, the node's namespaces or
files, or more privileges. Everything else of the pod (node selection, tolerations, affinity,
sidecars with the same security context, resources, annotations) is the patches' to change.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import jsonpatch
import jsonpointer

from tessera.operator.resources import outpost as model

Manifest = dict[str, Any]


class PatchError(ValueError):
    """A patch that does not apply; the message names it."""


def _identity(manifest: Manifest) -> tuple[Any, ...]:
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        return (manifest.get("apiVersion"), manifest.get("kind"), None, None, None)
    return (
        manifest.get("apiVersion"),
        manifest.get("kind"),
        meta.get("name"),
        meta.get("namespace"),
        meta.get("ownerReferences"),
    )


def apply(component: str, manifest: Manifest, patches: Sequence[model.JsonPatch]) -> Manifest:
    """`manifest` with `patches` applied in order (a new object; `manifest` is left as it was)."""
    result: Any = copy.deepcopy(manifest)
    for index, patch in enumerate(patches):
        where = f"spec.jsonPatches.{component}[{index}]"
        try:
            result = jsonpatch.apply_patch(result, [patch.operation()], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise PatchError(f"{where}: {patch.op} {patch.path}: {exc}") from None
        if not isinstance(result, dict) or _identity(result) != _identity(manifest):
            # SECURITY: a patch never renames, moves or detaches an object (e.g. `replace
            # /metadata` would, though no single protected path is named).
            raise PatchError(
                f"{where}: a patch may not change apiVersion, kind, metadata.name, "
                "metadata.namespace or metadata.ownerReferences"
            )
    patched: Manifest = result
    if manifest.get("kind") == "Deployment":
        _pod_guard(component, manifest, patched)
    return patched


# Pod fields that decide what a pod may do beyond its own container: kept as generated.
_POD_FIELDS = (
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "securityContext",
    "nodeName",
)
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_SAFE_VOLUMES = {"name", "emptyDir", "configMap", "secret", "projected", "downwardAPI"}


def _pod(manifest: Manifest) -> dict[str, Any]:
    pod = ((manifest.get("spec") or {}).get("template") or {}).get("spec")
    return pod if isinstance(pod, dict) else {}


def _pod_guard(component: str, generated: Manifest, patched: Manifest) -> None:
    """Refuse a patched Deployment whose pod reaches beyond what the generated one may.

    SECURITY: whoever may create an Outpost could otherwise have the operator run a pod with a
    powerful service account of the namespace, the node's network or files, or privileges."""
    before, after = _pod(generated), _pod(patched)
    where = f"spec.jsonPatches.{component}"
    for field in _POD_FIELDS:
        if before.get(field) != after.get(field):
            raise PatchError(f"{where}: a patch may not change the pod's {field}")
    (container,) = before["containers"]
    allowed = container.get("securityContext")
    for key in _CONTAINER_LISTS:
        for index, item in enumerate(after.get(key) or []):
            if not isinstance(item, dict) or item.get("securityContext") != allowed:
                raise PatchError(
                    f"{where}: {key}[{index}] must keep the outpost container's securityContext"
                )
    for index, volume in enumerate(after.get("volumes") or []):
        if not isinstance(volume, dict) or set(volume) - _SAFE_VOLUMES:
            raise PatchError(
                f"{where}: volumes[{index}] may only be an emptyDir, configMap, secret, "
                "projected or downwardAPI volume"
            )
