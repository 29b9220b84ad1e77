"""RFC 6902 patches of the generated objects (`Outpost.spec.jsonPatches`, authentik's
`kubernetes_json_patches`), applied by `tessera.operator.handlers.outposts` after `build`.

A patch that cannot apply (a path that is not there, a failed `test`) or that would change what
an object is (apiVersion, kind, name, namespace, owner) raises `PatchError`, whose message names
the operation (`spec.jsonPatches.deployment[2]: ...`); the resource then reports `InvalidSpec`
and nothing of that reconcile is written.
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
    return patched
