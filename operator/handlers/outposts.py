"""Reconcile an `Outpost` resource: the core outpost and its token, then the objects running it.

Called by the handlers registered in `tessera.operator.handlers` through `runtime.Reconciler`
(create, update, resume, the drift timer, delete), and by the observation timer (`observe`).

A reconcile: resolves `providerRefs` to core proxy or LDAP providers (by their resources'
markers; one missing is `ProviderNotReady`, reconciled again as soon as the provider's
reconcile tells the Outpost through `providerrefs`), upserts the core outpost by its marker
(`tessera.dev/Outpost/<ns>/<name>/<uid>`), reads the outpost's API token (from the core only when
the Secret does not hold that token yet: each read of a key is an audit event), asks the API
server which optional kinds it serves, builds the objects (`builders.outpost`), applies every
JSON patch before writing anything (`builders.patches`: a bad one is `InvalidSpec`), writes each
object that differs (`owned.apply`) and deletes the owned ones no longer wanted (an Ingress once
no provider has a host, a disabled component). Deleting the resource deletes the core outpost
and its token; Kubernetes collects the owned objects through their owner references.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator import builders, client
from tessera.operator.builders import outpost as build
from tessera.operator.handlers import kube, ldapproviders, objects, owned, proxyproviders, runtime
from tessera.operator.handlers.runtime import Conflict, InvalidSpec, Runtime
from tessera.operator.resources import Reason, common, ldapprovider, outpost, proxyprovider

KIND = outpost.KIND.kind
PATH = "outposts/instances/"
TOKENS = "core/tokens/"
VIA = {"name": "name__iexact", "managed": "managed__iexact"}
MAX_NAME = 200  # the core's limit on an outpost's name and managed value
TRAEFIK_APIS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")
MONITORING_API = "monitoring.coreos.com/v1"
MAX_INSTANCES = 100
# Provider kind -> (plural, the core provider of a resource of that kind).
PROVIDERS = {
    proxyprovider.KIND.kind: (proxyprovider.KIND.plural, proxyproviders.core_provider),
    ldapprovider.KIND.kind: (ldapprovider.KIND.plural, ldapproviders.core_provider),
}


class ProviderPending(runtime.Failure):
    """A provider reference names no resource, or one without a core provider yet: the
    provider's reconcile tells the Outpost when it has one (`providerrefs`), the drift timer
    looks again meanwhile."""

    reason = Reason.PROVIDER_NOT_READY
    nudged = True


def parse(body: Mapping[str, Any]) -> outpost.OutpostSpec:
    return outpost.OutpostSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


def core_name(body: Mapping[str, Any]) -> str:
    """The core outpost's (unique) name: `<namespace>/<name>`."""
    name = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
    if len(name) > MAX_NAME or len(managed(body)) > MAX_NAME:
        raise InvalidSpec(
            f"metadata.name: namespace and name together are too long for the core "
            f"(at most {MAX_NAME} characters with the resource's marker)"
        )
    return name


# The core outpost -----------------------------------------------------------------------------


async def providers_of(
    rt: Runtime, namespace: str, spec: outpost.OutpostSpec
) -> tuple[list[int], tuple[build.Host, ...]]:
    """The core pks of the referenced providers, and their external hosts."""
    pks: list[int] = []
    hosts: list[build.Host] = []
    for index, ref in enumerate(spec.provider_refs):
        plural, core_provider = PROVIDERS[ref.kind]
        # SECURITY: references stay in the resource's namespace.
        resource = await kube.read_custom(
            rt.kube, common.GROUP, common.VERSION, plural, namespace, ref.name
        )
        where = f"spec.providerRefs[{index}].name: {ref.kind} {ref.name!r}"
        if resource is None:
            raise ProviderPending(f"{where} does not exist in namespace {namespace!r}")
        found = await core_provider(rt, resource)
        if found is None:
            raise ProviderPending(f"{where} has no core provider yet")
        pks.append(int(found["pk"]))
        if found.get("external_host"):
            hosts.append(build.Host(str(found["external_host"]), str(found.get("mode") or "")))
    return pks, tuple(hosts)


async def tell_served(rt: Runtime, body: Mapping[str, Any], spec: outpost.OutpostSpec) -> int:
    """Annotate the LDAPProviders this (ldap) Outpost serves that were not told yet, so that
    their connection Secrets name its Service at once (`ldapproviders.served_annotation`)."""
    meta = body["metadata"]
    key, told = ldapproviders.served_annotation(str(meta["name"])), 0
    for ref in spec.provider_refs:
        if ref.kind != ldapprovider.KIND.kind:
            continue
        plural = ldapprovider.KIND.plural
        resource = await kube.read_custom(
            rt.kube, common.GROUP, common.VERSION, plural, meta["namespace"], ref.name
        )
        annotations = ((resource or {}).get("metadata") or {}).get("annotations") or {}
        if resource is None or annotations.get(key) == str(meta["uid"]):
            continue
        told += await kube.annotate_custom(
            rt.kube,
            common.GROUP,
            common.VERSION,
            plural,
            meta["namespace"],
            ref.name,
            {key: str(meta["uid"])},
        )
    return told


def core_config(rt: Runtime, body: Mapping[str, Any], spec: outpost.OutpostSpec) -> dict[str, Any]:
    """The outpost's `config` keys the resource decides (the core adds authentik's defaults)."""
    return {
        "authentik_host": rt.config.public_url,
        "authentik_host_browser": rt.config.browser_url,
        "kubernetes_namespace": body["metadata"]["namespace"],
        "kubernetes_replicas": spec.replicas,
        "kubernetes_service_type": spec.service_type,
        "refresh_interval": spec.refresh_interval,
    }


def changes(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `want` the core outpost `have` does not match (drift included)."""
    out = {k: want[k] for k in ("name", "type") if objects.text(want[k]) != objects.text(have[k])}
    if sorted(want["providers"]) != sorted(have.get("providers") or []):
        out["providers"] = want["providers"]
    config = have.get("config") or {}
    if any(config.get(k) != v for k, v in want["config"].items()):
        out["config"] = {**config, **want["config"]}
    return out


async def core_outpost(
    rt: Runtime, body: Mapping[str, Any], spec: outpost.OutpostSpec, providers: list[int]
) -> tuple[dict[str, Any], str]:
    name = core_name(body)
    want: dict[str, Any] = {
        "name": name,
        "type": spec.type,
        "providers": providers,
        "config": core_config(rt, body, spec),
    }
    unique = ("name", name, "metadata.name")
    return await objects.upsert(rt.core, PATH, managed(body), want, unique, changes, VIA)


# The token ------------------------------------------------------------------------------------


def _held_token(secret: Mapping[str, Any] | None, uid: str, token_pk: str) -> str | None:
    """The token the owned Secret holds, if it is the core token `token_pk`."""
    if secret is None or not owned.owned_by(secret, uid):
        return None
    meta = secret.get("metadata") or {}
    if (meta.get("annotations") or {}).get(build.TOKEN_PK_ANNOTATION) != token_pk:
        return None
    raw = (secret.get("data") or {}).get("token")
    try:
        return base64.b64decode(raw, validate=True).decode() if raw else None
    except (binascii.Error, UnicodeDecodeError):
        return None


async def token(
    rt: Runtime, body: Mapping[str, Any], core: Mapping[str, Any], secret: Any
) -> tuple[str, str]:
    """(key, token pk) of the outpost's API token; the key read from the core only when the
    Secret does not hold it already."""
    identifier = str(core["token_identifier"])
    try:
        found = await rt.core.request("GET", f"{TOKENS}{identifier}/")
    except client.NotFound:
        # An admin deleted it: any write of the outpost makes the core create it again.
        await rt.core.request(
            "PATCH", f"{PATH}{core['pk']}/", body={"name": core["name"]}, managed=managed(body)
        )
        found = await rt.core.request("GET", f"{TOKENS}{identifier}/")
    token_pk = str(found["pk"])
    held = _held_token(secret, str(body["metadata"]["uid"]), token_pk)
    if held:
        return held, token_pk
    # SECURITY: the key goes into the Secret only; never into a status, an event or a log.
    view = await rt.core.request("GET", f"{TOKENS}{identifier}/view_key/")
    return str(view["key"]), token_pk


# The objects ----------------------------------------------------------------------------------


async def optional_apis(rt: Runtime, spec: outpost.OutpostSpec) -> tuple[str | None, bool]:
    """(the Traefik Middleware apiVersion the cluster serves, whether it serves ServiceMonitors).

    Asked even for a disabled component: one written before it was disabled is then deleted."""
    middleware_api = None
    if spec.type == "proxy":
        for api_version in TRAEFIK_APIS:
            if await owned.served(rt.kube, api_version, "middlewares"):
                middleware_api = api_version
                break
    monitors = await owned.served(rt.kube, MONITORING_API, "servicemonitors")
    return middleware_api, monitors


def patched(spec: outpost.OutpostSpec, built: build.Built) -> dict[str, dict[str, Any]]:
    """Every object with its component's JSON patches applied (all before any write)."""
    out = {}
    for component, manifest in built.objects.items():
        try:
            out[component] = builders.patches.apply(component, manifest, spec.patches(component))
        except builders.patches.PatchError as exc:
            raise InvalidSpec(str(exc)) from None
    return out


def _unwanted(plan: build.Plan, built: build.Built) -> list[tuple[owned.Kind, str]]:
    """The owned objects to delete: components skipped whose kind the cluster serves."""
    name = build.base_name(plan.name)
    kinds: dict[str, tuple[owned.Kind, str] | None] = {
        "deployment": (owned.Kind("apps/v1", "deployments"), name),
        "service": (owned.Kind("v1", "services"), name),
        "metricsService": (owned.Kind("v1", "services"), build.metrics_name(plan.name)),
        "ingress": (owned.Kind("networking.k8s.io/v1", "ingresses"), name),
        "serviceMonitor": (owned.Kind(MONITORING_API, "servicemonitors"), name)
        if plan.service_monitors
        else None,
        "middleware": (owned.Kind(plan.middleware_api, "middlewares"), name)
        if plan.middleware_api
        else None,
        "secret": None,  # never deleted by the operator (no such permission): collected with it
    }
    return [found for c in built.skipped if (found := kinds.get(c)) is not None]


async def write(
    rt: Runtime, uid: str, objects_: Mapping[str, dict[str, Any]]
) -> tuple[list[str], int]:
    """Apply every object; (their `Kind/name` labels, how many were written)."""
    labels, written = [], 0
    for manifest in objects_.values():
        try:
            done = await owned.apply(rt.kube, manifest, uid)
        except owned.NotOwned as exc:
            raise Conflict(
                f"{exc} exists and is not owned by this Outpost; the operator does not take it "
                "over (rename the Outpost or delete that object)"
            ) from None
        except owned.Refused as exc:
            raise InvalidSpec(str(exc)) from None
        labels.append(owned.label(manifest))
        written += done != "in sync"
    return labels, written


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    spec = parse(body)
    namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
    image = spec.image or rt.config.outpost_image
    if not image:
        raise InvalidSpec("spec.image: required, the operator was given no default outpost image")
    providers, hosts = await providers_of(rt, namespace, spec)
    core, happened = await core_outpost(rt, body, spec, providers)
    secret_kind = owned.Kind("v1", "secrets")
    secret_name = build.base_name(body["metadata"]["name"])
    secret = await owned.read(rt.kube, secret_kind, namespace, secret_name)
    key, token_pk = await token(rt, body, core, secret)
    middleware_api, monitors = await optional_apis(rt, spec)
    plan = build.Plan(
        owner=body,
        spec=spec,
        image=image,
        core_url=rt.config.core_url,
        browser_url=rt.config.browser_url,
        token=key,
        token_pk=token_pk,
        outpost_uid=str(core["pk"]),
        hosts=hosts,
        middleware_api=middleware_api,
        service_monitors=monitors,
    )
    built = build.build(plan)
    ready = patched(spec, built)
    components, written = await write(rt, uid, ready)
    removed = 0
    for kind, name in _unwanted(plan, built):
        removed += await owned.remove(rt.kube, kind, namespace, name, uid)
    await tell_served(rt, body, spec)
    fields: dict[str, Any] = {
        "outpostUID": str(core["pk"]),
        "components": components,
        "skipped": [f"{c}: {why}" for c, why in built.skipped.items()],
        **await observe(rt, body, str(core["pk"])),
    }
    message = (
        f"core outpost {core['pk']} {happened}; {len(components)} objects, {written} written"
        + (f", {removed} removed" if removed else "")
    )
    return fields, message


async def remove(rt: Runtime, body: kopf.Body) -> str:
    """Delete the core outpost and its token (`Delete`) or release it (`Orphan`)."""
    return await objects.release(rt.core, PATH, managed(body), body, "core outpost", VIA)


# Observation ----------------------------------------------------------------------------------


def _instances(health: Any) -> list[dict[str, Any]]:
    out = []
    for item in health if isinstance(health, list) else []:
        if not isinstance(item, Mapping):
            continue
        out.append(
            {
                "uid": str(item.get("uid", ""))[:64],
                "hostname": str(item.get("hostname", ""))[:253],
                "version": str(item.get("version", ""))[:64],
                "lastSeen": str(item.get("last_seen", ""))[:64],
            }
        )
    return sorted(out, key=lambda i: i["hostname"] + i["uid"])[:MAX_INSTANCES]


async def observe(rt: Runtime, body: Mapping[str, Any], outpost_uid: str) -> dict[str, Any]:
    """Status fields of what runs: the Deployment's replicas and the instances the core sees.

    What cannot be read now is left out (the status keeps its last value)."""
    fields: dict[str, Any] = {}
    name = build.base_name(body["metadata"]["name"])
    try:
        found = await owned.read(
            rt.kube, owned.Kind("apps/v1", "deployments"), body["metadata"]["namespace"], name
        )
    except kube.KubeUnavailable:
        found = None
    if found is not None:
        fields["replicas"] = int((found.get("spec") or {}).get("replicas") or 0)
        fields["readyReplicas"] = int((found.get("status") or {}).get("readyReplicas") or 0)
    try:
        health = await rt.core.request("GET", f"{PATH}{outpost_uid}/health/")
    except client.CoreError:
        return fields
    instances = _instances(health)
    fields["connectedInstances"] = len(health) if isinstance(health, list) else 0
    fields["instances"] = instances
    return fields
