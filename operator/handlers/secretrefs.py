"""Prompt reconciles of the OAuth2Providers whose `clientSecretRef` Secret changed.

`register` adds two handlers to the operator's registry (`tessera.operator.handlers`): a Kopf
index of the OAuth2Provider resources by the Secret they reference, `(namespace, Secret name)`,
and a handler of Secret events that runs only for Secrets in that index (a Kopf `when` filter
on the index: the Secrets of the cluster reach the operator through the watch, but nothing is
done with, kept of, or logged about a Secret no provider names).

When a referenced Secret is added, modified or deleted, the handler writes the Secret's
`resourceVersion` (or `absent` after a delete) into the annotation
`tessera.dev/client-secret-version` of each provider naming it. Kopf sees the annotation change
and runs the provider's update handler at once, so the core's client secret and the credentials
Secret follow the rotation with the usual retries and conditions; a deleted Secret or a missing
key makes the reconcile report `Ready=False` naming `spec.clientSecretRef`. The annotation holds
no part of the secret. The Secrets listed when the operator starts are not announced: the
providers' resume handlers read their Secrets anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator.handlers import kube
from tessera.operator.handlers.runtime import Runtime
from tessera.operator.resources import common, oauth2provider

ANNOTATION = "tessera.dev/client-secret-version"
INDEX = "providers_by_secret"
ABSENT = "absent"

Key = tuple[str, str]  # namespace, Secret name


def entry(namespace: str | None, name: str | None, spec: Mapping[str, Any]) -> dict[Key, str]:
    """The index entry of one provider: the Secret it references -> the provider's name."""
    ref = spec.get("clientSecretRef")
    if not namespace or not name or not isinstance(ref, Mapping) or not ref.get("name"):
        return {}
    return {(namespace, str(ref["name"])): name}


def version(event: str | None, body: Mapping[str, Any]) -> str:
    """The annotation's value for a Secret event: its resourceVersion, or `absent`."""
    if event == "DELETED":
        return ABSENT
    return str(body.get("metadata", {}).get("resourceVersion") or ABSENT)


async def announce(rt: Runtime, namespace: str, providers: list[str], value: str) -> int:
    """Annotate the named providers with the Secret's version; how many still exist."""
    told = 0
    for name in providers:
        if await kube.annotate_custom(
            rt.kube,
            common.GROUP,
            common.VERSION,
            oauth2provider.KIND.plural,
            namespace,
            name,
            {ANNOTATION: value},
        ):
            told += 1
    return told


def register(reg: kopf.OperatorRegistry) -> None:
    """Add the index of providers by Secret and the Secret handler to `reg`."""

    @kopf.index(common.GROUP, common.VERSION, oauth2provider.KIND.plural, id=INDEX, registry=reg)
    def providers_by_secret(
        namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[Key, str]:
        return entry(namespace, name, spec)

    def referenced(namespace: str | None, name: str | None, **kwargs: Any) -> bool:
        return (namespace or "", name or "") in kwargs[INDEX]

    @kopf.on.event("v1", "secrets", id="client-secret-ref", when=referenced, registry=reg)
    async def secret_changed(
        memo: kopf.Memo,
        type: str | None,
        namespace: str | None,
        name: str | None,
        body: kopf.Body,
        **kwargs: Any,
    ) -> None:
        if type is None:
            return  # the initial listing: every provider's resume handler reads its Secret
        # SECURITY: only the Secret's resourceVersion leaves this handler, never its data.
        names = sorted(set(kwargs[INDEX].get((namespace or "", name or ""), ())))
        await announce(memo["runtime"], namespace or "", names, version(type, body))
