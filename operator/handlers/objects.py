"""Idempotent writes of managed core objects: find by marker, create, correct drift, release.

`providers` and `applications` call these with their path and fields. Every object the operator
makes carries `managed = tessera.dev/<Kind>/<namespace>/<name>/<uid>`; it is looked up by that
marker before anything is created, so a retry after a lost answer never duplicates it, and every
later write sends the marker in `X-Tessera-Managed-By` (the core refuses writes without it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from tessera.operator import client
from tessera.operator.handlers.runtime import Conflict

Compare = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


def text(value: Any) -> str | None:
    return None if value is None else str(value)


def plain_changes(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `want` whose value differs from the core object's (compared as text)."""
    return {k: v for k, v in want.items() if text(v) != text(have.get(k))}


async def upsert(
    core: client.CoreClient,
    path: str,
    marker: str,
    want: dict[str, Any],
    unique: tuple[str, str, str],
    compare: Compare = plain_changes,
    via: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The core object for `marker`, created or with its drift patched; and what was done.

    `unique` = (core field, value, spec field): the field the core keeps unique. Held by another
    object (made by hand, or managed for another resource), it is a `Conflict`: the operator never
    takes over an object that is not its own. `via`: the listing's query parameters for fields it
    has no filter of the same name for (`client.CoreClient.first`).
    """
    current = await core.first(path, via=via, managed=marker)
    if current is None:
        field, value, spec_field = unique
        other = await core.first(path, via=via, **{field: value})
        if other is not None:
            # SECURITY: never adopt an object someone else made; a resource cannot take over an
            # existing application (and the users bound to it) by naming its slug.
            owner = "managed for another resource" if other.get("managed") else "made by hand"
            raise Conflict(
                f"{spec_field}: {field} {value!r} is taken in the core by an object {owner}"
            )
        current, made = await _create(core, path, marker, want, via)
        if made:
            return current, "created"
    diff = compare(want, current)
    if not diff:
        return current, "in sync"
    patched: dict[str, Any] = await core.request(
        "PATCH", f"{path}{current['pk']}/", body=diff, managed=marker
    )
    return patched, "corrected " + ", ".join(sorted(diff))


async def _create(
    core: client.CoreClient,
    path: str,
    marker: str,
    want: dict[str, Any],
    via: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """POST the object: (it, True); or (the object with our marker, False) when one is there.

    An earlier attempt whose answer never came (a timeout while the core was busy) may land
    between the lookup and this POST, which the core then refuses as a duplicate name or slug.
    """
    try:
        created: dict[str, Any] = await core.request("POST", path, body={**want, "managed": marker})
    except (client.Invalid, client.Conflict):
        late = await core.first(path, via=via, managed=marker)
        if late is None:
            raise
        return late, False
    return created, True


def deletion_policy(body: Mapping[str, Any]) -> str:
    """`spec.deletionPolicy` read without the spec model: a delete must work for any spec."""
    value = (body.get("spec") or {}).get("deletionPolicy")
    return "Orphan" if value == "Orphan" else "Delete"


async def release(
    core: client.CoreClient,
    path: str,
    marker: str,
    body: Mapping[str, Any],
    what: str,
    via: Mapping[str, str] | None = None,
) -> str:
    """Delete the core object (`Delete`) or clear its marker so admins may edit it (`Orphan`)."""
    current = await core.first(path, via=via, managed=marker)
    if current is None:
        return f"no {what} to remove"
    target = f"{path}{current['pk']}/"
    if deletion_policy(body) == "Orphan":
        await core.request("PATCH", target, body={"managed": None}, managed=marker)
        return f"{what} {current['pk']} orphaned: no longer managed, editable by admins"
    with contextlib.suppress(client.NotFound):
        await core.request("DELETE", target, managed=marker)
    return f"{what} {current['pk']} deleted"
