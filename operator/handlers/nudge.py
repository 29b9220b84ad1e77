"""Prompt reconciles of the Applications waiting for their provider.

An Application whose `providerRef` names a provider without a core object yet reports
`Ready=False, reason=ProviderNotReady` and is not retried on a timer: the provider's reconcile
tells it when to look again. `tessera.operator.handlers` keeps a Kopf index of the Applications
by the provider they reference (`entry`); after each successful provider reconcile, `announce`
writes the core provider's pk into the annotation `tessera.dev/provider-pk` of those
Applications. Kopf sees the annotation change and runs the Application's update handler at once.

The annotation is written only when its value differs, and not to an Application that is Ready
without ever having been nudged (it linked on its own), so an Application is reconciled at most
once per core provider it should link to (also a new one after the core object was deleted and
re-created, once it had been nudged), never in a loop: its own reconcile writes nothing the
provider watches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator.handlers import kube
from tessera.operator.handlers.runtime import Runtime
from tessera.operator.resources import application, common, oauth2provider

ANNOTATION = "tessera.dev/provider-pk"
INDEX = "applications_by_provider"

Key = tuple[str, str, str]  # namespace, provider kind, provider name


Entry = tuple[str, str | None, bool]  # name, annotation value, Ready=True


def entry(
    namespace: str | None,
    name: str | None,
    spec: Mapping[str, Any],
    annotations: Mapping[str, str],
    status: Mapping[str, Any],
) -> dict[Key, Entry]:
    """The index entry of one Application: its provider's key -> (name, annotation, ready)."""
    ref = spec.get("providerRef")
    if not namespace or not name or not isinstance(ref, Mapping) or not ref.get("name"):
        return {}
    kind = str(ref.get("kind") or oauth2provider.KIND.kind)
    ready = any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return {(namespace, kind, str(ref["name"])): (name, annotations.get(ANNOTATION), ready)}


def waiting(seen: str | None, ready: bool, pk: str) -> bool:
    """Whether an Application should be told about core provider `pk`.

    Not when it was told already, nor when it is Ready without ever having been told: it linked
    on its first attempt (the common case when hundreds are applied at once), and a nudge would
    only cost it a reconcile with nothing to do.
    """
    return seen != pk and not (seen is None and ready)


async def announce(
    rt: Runtime, body: kopf.Body, fields: Mapping[str, Any], index: kopf.Index[Key, Any]
) -> int:
    """Annotate the Applications of provider `body` (an OAuth2Provider or a ProxyProvider) that
    have not seen its core pk; how many."""
    kind = str(body.get("kind") or oauth2provider.KIND.kind)
    key = (body.metadata.namespace or "", kind, body.metadata.name or "")
    pk = str(fields["providerPk"])
    told = 0
    for name, seen, ready in list(index.get(key, ())):
        if not waiting(seen, ready, pk):
            continue
        plural = application.KIND.plural
        if await kube.annotate_custom(
            rt.kube, common.GROUP, common.VERSION, plural, key[0], name, {ANNOTATION: pk}
        ):
            told += 1
    return told
