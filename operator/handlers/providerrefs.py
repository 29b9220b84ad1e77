"""Prompt reconciles of the Outposts serving a provider whose core provider changed.

An Outpost's objects depend on its providers: the Ingress routes their external hosts, and an
Outpost whose `providerRefs` names a provider without a core object yet waits (`ProviderNotReady`,
retried with backoff). `tessera.operator.handlers` keeps a Kopf index of the Outposts by the
providers they name (`entry`); after each successful ProxyProvider or LDAPProvider reconcile,
`announce` writes a digest of the core provider (its pk, and a proxy provider's external host
and mode) into the annotation `tessera.dev/provider-<digest of the provider's kind and name>` of
those Outposts, where it differs. Kopf
sees the annotation change and runs the Outpost's update handler at once.

Written only when the value differs, so a provider's drift timer writes nothing, and the Outpost's
reconcile writes nothing the provider watches: no loop. The annotation holds no secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator.handlers import kube
from tessera.operator.handlers.runtime import Runtime
from tessera.operator.resources import common, outpost

INDEX = "outposts_by_provider"
PREFIX = "tessera.dev/provider-"

Key = tuple[str, str, str]  # namespace, provider kind, provider name
Entry = tuple[str, str | None]  # Outpost name, the annotation's value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def annotation(provider: str, kind: str = outpost.SERVES["proxy"]) -> str:
    """The annotation key of provider `provider` on an Outpost (a name may be 253 long; a key's
    name part, 63). A ProxyProvider's key names it alone (as before other kinds existed)."""
    return PREFIX + _digest(provider if kind == outpost.SERVES["proxy"] else f"{kind}/{provider}")


def value(fields: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """What the Outposts are told of a provider: a digest of what their objects depend on."""
    return _digest(f"{fields.get('providerPk')}|{fields.get('externalHost')}|{spec.get('mode')}")


def entry(
    namespace: str | None, name: str | None, spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> dict[Key, Entry]:
    """The index entries of one Outpost: each provider it names -> (its name, what it was told)."""
    refs = spec.get("providerRefs")
    if not namespace or not name or not isinstance(refs, list):
        return {}
    out: dict[Key, Entry] = {}
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("name"):
            provider = str(ref["name"])
            kind = str(ref.get("kind") or outpost.SERVES["proxy"])
            out[(namespace, kind, provider)] = (name, annotations.get(annotation(provider, kind)))
    return out


async def announce(
    rt: Runtime, body: kopf.Body, fields: Mapping[str, Any], index: kopf.Index[Key, Any]
) -> int:
    """Annotate the Outposts naming provider `body` that were not told its current state."""
    provider = body.metadata.name or ""
    kind = str(body.get("kind") or outpost.SERVES["proxy"])
    key = (body.metadata.namespace or "", kind, provider)
    told = value(fields, body.get("spec") or {})
    count = 0
    for name, seen in list(index.get(key, ())):
        if seen == told:
            continue
        if await kube.annotate_custom(
            rt.kube,
            common.GROUP,
            common.VERSION,
            outpost.KIND.plural,
            key[0],
            name,
            {annotation(provider, kind): told},
        ):
            count += 1
    return count
