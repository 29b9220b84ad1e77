"""Reconcile an `LDAPProvider` resource into a core LDAP provider and its connection Secret.

Called by the handlers registered in `tessera.operator.handlers` (create, update, resume, the
drift timer, delete) through `runtime.Reconciler`; `outposts` and `applications` find the core
provider of a resource by its `managed` marker (`tessera.dev/LDAPProvider/<ns>/<name>/<uid>`).
The core provider is looked up by that marker before anything is created, so a retry never makes
a second one, and one edited or deleted in the core is put back by the next reconcile.

The connection Secret holds what an application configures to use the directory: the base DN,
the bind DN of its users (`cn={username},ou=users,<base DN>`), the users' and groups' subtrees
and object class filters, as the ldap outpost serves them, and, once an ldap `Outpost` names
the provider, `ldap_url` and `ldaps_url` of that Outpost's Service (the first by name). It holds
no password. An ldap Outpost's reconcile annotates the providers it serves
(`served_annotation`), so a new Outpost reaches their Secrets at once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from tessera.operator.builders import outpost as build
from tessera.operator.handlers import kube, objects, owned, providers
from tessera.operator.handlers.runtime import InvalidSpec, Runtime
from tessera.operator.resources import common, ldapprovider, outpost

KIND = ldapprovider.KIND.kind
PATH = "providers/ldap/"
USERS = "core/users/"
GROUPS = "core/groups/"
MAX_NAME = 200  # the core's limit on a provider's name
_COMPARED = (
    "name",
    "authorization_flow",
    "invalidation_flow",
    "base_dn",
    "certificate",
    "tls_server_name",
    "uid_start_number",
    "gid_start_number",
    "search_mode",
    "bind_mode",
    "mfa_support",
)


def parse(body: Mapping[str, Any]) -> ldapprovider.LDAPProviderSpec:
    return ldapprovider.LDAPProviderSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


def core_name(body: Mapping[str, Any]) -> str:
    """The core provider's (unique) name: `<namespace>/ldap/<name>`, which no other kind's core
    name can equal (a Kubernetes name has no `/`)."""
    name = f"{body['metadata']['namespace']}/ldap/{body['metadata']['name']}"
    if len(name) > MAX_NAME:
        raise InvalidSpec(
            f"metadata.name: namespace and name together exceed the core's {MAX_NAME} characters"
        )
    return name


async def desired(rt: Runtime, body: Mapping[str, Any]) -> dict[str, Any]:
    """The core provider's fields for this resource (flows and certificate resolved to pks)."""
    spec = parse(body)
    certificate = None
    if spec.certificate is not None:
        certificate = await providers.keypair_pk(rt.core, spec.certificate.name, "certificate")
    return {
        "name": core_name(body),
        "authorization_flow": await providers.flow_pk(
            rt.core, spec.authorization_flow, "authorizationFlow"
        ),
        "invalidation_flow": await providers.flow_pk(
            rt.core, spec.invalidation_flow, "invalidationFlow"
        ),
        "base_dn": spec.base_dn,
        "certificate": certificate,
        "tls_server_name": spec.tls_server_name or "",
        "uid_start_number": spec.uid_start_number,
        "gid_start_number": spec.gid_start_number,
        "search_mode": spec.search_mode,
        "bind_mode": spec.bind_mode,
        "mfa_support": spec.mfa_support,
    }


def changes(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `want` that the core object `have` does not match (drift included)."""
    return {k: want[k] for k in _COMPARED if objects.text(want[k]) != objects.text(have.get(k))}


SERVED_PREFIX = "tessera.dev/outpost-"


def served_annotation(outpost_name: str) -> str:
    """The annotation an ldap Outpost puts on the LDAPProviders it serves (a name may be 253
    long; a key's name part, 63): its value changing makes the provider rewrite its Secret."""
    return SERVED_PREFIX + hashlib.sha256(outpost_name.encode()).hexdigest()[:16]


async def outposts_serving(rt: Runtime, body: Mapping[str, Any]) -> list[str]:
    """Names of the ldap Outposts of the namespace naming this provider, sorted."""
    meta = body["metadata"]
    found = await kube.list_custom(
        rt.kube, common.GROUP, common.VERSION, outpost.KIND.plural, meta["namespace"]
    )
    names = []
    for item in found:
        spec = item.get("spec") or {}
        refs = spec.get("providerRefs") or []
        if spec.get("type") != "ldap" or (item.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if any(
            isinstance(r, Mapping) and r.get("kind") == KIND and r.get("name") == meta["name"]
            for r in refs
        ):
            names.append(str(item["metadata"]["name"]))
    return sorted(names)


def connection(base_dn: str, namespace: str = "", outposts: Sequence[str] = ()) -> dict[str, str]:
    """The connection Secret's data for a directory rooted at `base_dn`, served by `outposts`
    (the first one's Service gives `ldap_url` and `ldaps_url`)."""
    urls = {}
    if outposts:
        host = f"{build.base_name(outposts[0])}.{namespace}.svc"
        urls = {
            "ldap_url": f"ldap://{host}:{build.SERVICE_PORTS['ldap']}",
            "ldaps_url": f"ldaps://{host}:{build.SERVICE_PORTS['ldaps']}",
        }
    return {
        **urls,
        "base_dn": base_dn,
        "bind_dn_pattern": f"cn={{username}},ou=users,{base_dn}",
        "users_dn": f"ou=users,{base_dn}",
        "groups_dn": f"ou=groups,{base_dn}",
        "user_filter": "(objectClass=user)",
        "group_filter": "(objectClass=group)",
    }


async def publish(rt: Runtime, body: Mapping[str, Any], provider: Mapping[str, Any]) -> str:
    """Write the connection Secret of `body` from the core `provider`; what was done."""
    spec = parse(body)
    namespace = body["metadata"]["namespace"]
    data = connection(str(provider["base_dn"]), namespace, await outposts_serving(rt, body))
    labels = {**kube.MANAGED_BY, "tessera.dev/ldapprovider": body["metadata"]["name"]}
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec.connection_secret.name,
            "namespace": body["metadata"]["namespace"],
            "labels": labels,
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }
    kopf.adopt(manifest, owner=kopf.Body(dict(body)))  # type: ignore[arg-type]
    return await owned.write_data(rt.kube, manifest, str(body["metadata"]["uid"]))


async def search_access(rt: Runtime, spec: ldapprovider.LDAPProviderSpec) -> dict[str, list[Any]]:
    """Who may search the whole directory: `searchUsers` and `searchGroups` as core pks."""
    users: list[int] = []
    for index, username in enumerate(spec.search_users):
        found = [
            u for u in await rt.core.list(USERS, username=username) if u.get("username") == username
        ]
        if not found:
            raise InvalidSpec(f"spec.searchUsers[{index}]: the core has no user {username!r}")
        users.append(int(found[0]["pk"]))
    groups: list[str] = []
    for index, name in enumerate(spec.search_groups):
        found = [g for g in await rt.core.list(GROUPS, name=name) if g.get("name") == name]
        if not found:
            raise InvalidSpec(f"spec.searchGroups[{index}]: the core has no group named {name!r}")
        groups.append(str(found[0]["pk"]))
    return {"users": users, "groups": groups}


async def grant_search(
    rt: Runtime, body: Mapping[str, Any], pk: Any, want: dict[str, list[Any]]
) -> bool:
    """Make the provider's "search full directory" holders exactly `want`; whether it changed."""
    path = f"{PATH}{pk}/search_access/"
    have = await rt.core.request("GET", path)
    if sorted(map(str, have.get("users") or [])) == sorted(map(str, want["users"])) and sorted(
        map(str, have.get("groups") or [])
    ) == sorted(map(str, want["groups"])):
        return False
    await rt.core.request("PUT", path, body=want, managed=managed(body))
    return True


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    want = await desired(rt, body)
    access = await search_access(rt, parse(body))
    unique = ("base_dn", want["base_dn"], "spec.baseDN")
    provider, happened = await objects.upsert(rt.core, PATH, managed(body), want, unique, changes)
    if await grant_search(rt, body, provider["pk"], access):
        happened += ", search access set"
    done = await publish(rt, body, provider)
    fields = {"providerPk": provider["pk"], "baseDN": provider["base_dn"]}
    secret = parse(body).connection_secret.name
    return fields, f"core LDAP provider {provider['pk']} {happened}; Secret {secret} {done}"


async def remove(rt: Runtime, body: kopf.Body) -> str:
    """Delete the core provider (`Delete`) or release it (`Orphan`)."""
    return await objects.release(rt.core, PATH, managed(body), body, "core LDAP provider")


async def core_provider(rt: Runtime, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The core provider of an LDAPProvider resource, found by its marker."""
    return await rt.core.first(PATH, managed=managed(resource))
