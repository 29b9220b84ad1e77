"""Reconcile an `Application` resource into a core application, its provider link and the policy
bindings of its access groups.

Called by the handlers registered in `tessera.operator.handlers` through `runtime.Reconciler`.
The provider is the `OAuth2Provider`, `ProxyProvider`, `SAMLProvider` or `LDAPProvider` resource
named by `spec.providerRef` in the same namespace; its core object is found by that resource's
`managed` marker (never by a pk copied from a status, which may be stale). Once linked, an
OAuth2 provider's credentials Secret gets the issuer and discovery URL, which need the
application's slug, and a SAML provider is told the slug (`samlproviders.link`) to write its
metadata ConfigMap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator import client
from tessera.operator.handlers import (
    kube,
    ldapproviders,
    objects,
    providers,
    proxyproviders,
    samlproviders,
)
from tessera.operator.handlers.runtime import Conflict, InvalidSpec, ProviderNotReady, Runtime
from tessera.operator.resources import (
    application,
    common,
    ldapprovider,
    oauth2provider,
    proxyprovider,
    samlprovider,
)

KIND = application.KIND.kind
PATH = "core/applications/"
# Provider kind -> (plural, core API path, the core object's marker of a resource).
PROVIDERS = {
    oauth2provider.KIND.kind: (oauth2provider.KIND.plural, providers.PATH, providers.managed),
    proxyprovider.KIND.kind: (
        proxyprovider.KIND.plural,
        proxyproviders.PATH,
        proxyproviders.managed,
    ),
    samlprovider.KIND.kind: (samlprovider.KIND.plural, samlproviders.PATH, samlproviders.managed),
    ldapprovider.KIND.kind: (ldapprovider.KIND.plural, ldapproviders.PATH, ldapproviders.managed),
}
BINDINGS = "policies/bindings/"
GROUPS = "core/groups/"


def parse(body: Mapping[str, Any]) -> application.ApplicationSpec:
    return application.ApplicationSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


async def provider_of(
    rt: Runtime, namespace: str, spec: application.ApplicationSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The provider resource named by `spec.providerRef` and its core provider."""
    name = spec.provider_ref.name
    plural, path, marker = PROVIDERS[spec.provider_ref.kind]
    # SECURITY: references stay in the resource's namespace: an Application cannot link, or have
    # the operator write the credentials of, a provider of another namespace.
    resource = await kube.read_custom(
        rt.kube, common.GROUP, common.VERSION, plural, namespace, name
    )
    where = f"spec.providerRef.name: {spec.provider_ref.kind} {name!r}"
    if resource is None:
        raise ProviderNotReady(f"{where} does not exist in namespace {namespace!r}")
    # The provider's core object is enough to link to: waiting for its Ready condition as well
    # would cost the application a retry whenever both are applied together.
    core_provider = await rt.core.first(path, managed=marker(resource))
    if core_provider is None:
        raise ProviderNotReady(f"{where} has no core provider yet")
    return resource, core_provider


async def group_pks(core: client.CoreClient, names: list[str]) -> list[str]:
    pks = []
    for index, name in enumerate(names):
        found = [g for g in await core.list(GROUPS, name=name) if g.get("name") == name]
        if not found:
            raise InvalidSpec(f"spec.accessGroups[{index}]: the core has no group named {name!r}")
        pks.append(str(found[0]["pk"]))
    return pks


async def bind_groups(core: client.CoreClient, app_pk: str, groups: list[str], marker: str) -> int:
    """Make the application's policy bindings exactly one per access group; changes made."""
    wanted = {pk: order for order, pk in enumerate(groups)}
    made = 0
    for binding in await core.list(BINDINGS, target=app_pk):
        group = binding.get("group")
        plain = not binding.get("policy") and binding.get("user") is None
        if plain and group is not None and str(group) in wanted:
            order = wanted.pop(str(group))
            if binding.get("order") == order and binding.get("enabled", True):
                continue
        # Anything else on a managed application is drift: remove it.
        with contextlib.suppress(client.NotFound):
            await core.request("DELETE", f"{BINDINGS}{binding['pk']}/", managed=marker)
        made += 1
    for pk, order in wanted.items():
        body = {"target": app_pk, "group": pk, "order": order, "enabled": True}
        await core.request("POST", BINDINGS, body=body, managed=marker)
        made += 1
    return made


def fields(spec: application.ApplicationSpec, provider_pk: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "slug": spec.slug,
        "provider": provider_pk,
        "meta_launch_url": spec.launch_url or "",
        "meta_description": spec.description or "",
        "meta_publisher": spec.publisher or "",
        "group": spec.group or "",
        "policy_engine_mode": spec.policy_engine_mode,
    }


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    spec = parse(body)
    namespace = body.metadata.namespace or ""
    resource, core_provider = await provider_of(rt, namespace, spec)
    serves = core_provider.get("assigned_application_slug")
    if serves and serves != spec.slug:
        raise Conflict(
            f"spec.providerRef.name: provider {spec.provider_ref.name!r} already serves the "
            f"application {serves!r}; a provider serves one application"
        )
    groups = await group_pks(rt.core, list(spec.access_groups))
    marker = managed(body)
    want = fields(spec, int(core_provider["pk"]))
    app, happened = await objects.upsert(
        rt.core, PATH, marker, want, ("slug", spec.slug, "spec.slug")
    )
    rebound = await bind_groups(rt.core, str(app["pk"]), groups, marker)
    if spec.provider_ref.kind == oauth2provider.KIND.kind:
        linked = await rt.core.request("GET", f"{providers.PATH}{core_provider['pk']}/")
        await providers.publish(rt, resource, linked)
    elif spec.provider_ref.kind == samlprovider.KIND.kind:
        await samlproviders.link(rt, resource, spec.slug)  # it writes its metadata ConfigMap
    message = f"core application {spec.slug!r} {happened}"
    if rebound:
        message += f"; {rebound} access binding(s) changed"
    return {"applicationUID": str(app["pk"])}, message


async def remove(rt: Runtime, body: kopf.Body) -> str:
    return await objects.release(rt.core, PATH, managed(body), body, "core application")
