"""LDAP in the operator end to end: an `Outpost` of type ldap runs `tessera outpost ldap` with the
LDAP and LDAPS listeners behind a Service on the well-known ports 389 and 636, with the same
security context, labels and settings as a proxy outpost; an `LDAPProvider` becomes a core LDAP
provider (through the real core) with a connection Secret holding the base DN and bind DN
pattern (and the address of the ldap Outpost serving it), is served by the Outpost naming it,
reports bad specs and conflicts in its Ready condition, and is deleted with the resource."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE
from helpers import Server
from kmockkit import Cluster, eventually
from operatorkit import (
    admin,
    application,
    core_object,
    create,
    delete,
    is_ready,
    ldap_provider,
    not_ready,
    outpost,
    patch_spec,
    ready,
    secret,
    stored,
)

from tessera.operator.builders import outpost as build

pytestmark = pytest.mark.slow

IMAGE = "registry.example/tessera:test"
BASE = "tessera-outpost-"


def ns() -> str:
    return f"l-{uuid.uuid4().hex[:8]}"


def ldap_outpost(name: str, namespace: str, *providers: str, **spec: Any) -> dict[str, Any]:
    refs = [{"kind": "LDAPProvider", "name": p} for p in providers]
    return outpost(name, namespace, type="ldap", providerRefs=refs, **spec)


async def test_an_ldap_outpost_listens_behind_the_well_known_ldap_ports(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    directory = ldap_outpost("directory", space, replicas=2)
    edge = outpost("edge", space)  # a proxy outpost, for comparison
    name = BASE + "directory"
    async with make_operator(outpost_image=IMAGE):
        await create(cluster, directory)
        await create(cluster, edge)
        await is_ready(cluster, directory, edge)
        deployment = await eventually(lambda: cluster.api.get("apps/v1/deployments", space, name))
        proxy = await eventually(
            lambda: cluster.api.get("apps/v1/deployments", space, BASE + "edge")
        )
    made = core_object(core, cluster, "outposts/instances/", directory)
    assert (made["type"], made["providers"]) == ("ldap", [])
    service = cluster.api.get("v1/services", space, name)
    metrics = cluster.api.get("v1/services", space, name + "-metrics")
    for obj in (deployment, service, metrics):
        for kube in (OLDEST_KUBE, NEWEST_KUBE):
            kubernetes_validate.validate(obj, kube, strict=True)
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("Outpost", "directory")

    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert (container["command"], container["args"]) == (["tessera"], ["outpost", "ldap"])
    assert container["image"] == IMAGE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"ldap": 3389, "ldaps": 6636, "http-metrics": 9300}
    env = {e["name"]: e for e in container["env"]}
    assert env["AUTHENTIK_LISTEN__LDAP"]["value"] == "0.0.0.0:3389"
    assert env["AUTHENTIK_LISTEN__LDAPS"]["value"] == "0.0.0.0:6636"
    assert env["AUTHENTIK_LISTEN__METRICS"]["value"] == "0.0.0.0:9300"
    assert env["AUTHENTIK_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "token"}
    assert secret(cluster, space, name)["token"]  # the outpost's core token
    assert container["readinessProbe"]["tcpSocket"] == {"port": "ldap"}
    # The same hardening, labels and settings as a proxy outpost's pods.
    (proxy_container,) = proxy["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"] == proxy_container["securityContext"]
    assert container["volumeMounts"] == proxy_container["volumeMounts"]
    assert container["resources"] == proxy_container["resources"]
    same = ("securityContext", "automountServiceAccountToken", "enableServiceLinks", "volumes")
    for key in same:
        assert pod["spec"][key] == proxy["spec"]["template"]["spec"][key], key
    assert {e["name"] for e in container["env"]} - {
        "AUTHENTIK_LISTEN__LDAP",
        "AUTHENTIK_LISTEN__LDAPS",
    } == {e["name"] for e in proxy_container["env"]} - {
        "AUTHENTIK_LISTEN__HTTP",
        "AUTHENTIK_LISTEN__HTTPS",
    }
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/name": build.APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "ldap",
        "app.kubernetes.io/part-of": "tessera",
        "app.kubernetes.io/managed-by": build.MANAGED_BY,
    }
    # LDAP clients expect 389 and 636: the Service maps them to the unprivileged listeners.
    assert service["spec"]["ports"] == [
        {"name": "ldap", "port": 389, "targetPort": "ldap", "protocol": "TCP"},
        {"name": "ldaps", "port": 636, "targetPort": "ldaps", "protocol": "TCP"},
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert metrics["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9300, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    # No routes for LDAP: an Ingress speaks HTTP.
    assert not cluster.api.alive("networking.k8s.io/v1/ingresses", space, name)
    skipped = stored(cluster, directory)["status"]["skipped"]
    assert not [s for s in skipped if s.startswith(("ingress", "middleware"))]


async def test_an_ldap_provider_gets_a_connection_secret_and_is_served_by_its_outpost(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    group = admin(core, "POST", "core/groups/", {"name": f"media-{space}"})
    account = admin(
        core, "POST", "core/users/", {"username": f"jellyfin-{space}", "name": "Jellyfin"}
    )
    jellyfin = ldap_provider(
        "jellyfin",
        space,
        bindMode="cached",
        searchMode="cached",
        searchGroups=[f"media-{space}"],
        searchUsers=[f"jellyfin-{space}"],
    )
    app = application(
        "jellyfin",
        space,
        f"jellyfin-{space}",
        providerRef={"kind": "LDAPProvider", "name": "jellyfin"},
    )
    directory = ldap_outpost("directory", space, "jellyfin")
    base = f"dc=jellyfin,dc={space}"
    async with make_operator(outpost_image=IMAGE):
        # The Outpost first: it waits for its provider, which tells it when it has one.
        await create(cluster, directory)
        await not_ready(cluster, directory, "ProviderNotReady")
        await create(cluster, jellyfin)
        await create(cluster, app)
        await is_ready(cluster, jellyfin, app, directory)
        data = await eventually(lambda: secret(cluster, space, "jellyfin-ldap"))
        made = core_object(core, cluster, "providers/ldap/", jellyfin)
        assert made["name"] == f"{space}/ldap/jellyfin"
        assert (made["base_dn"], made["bind_mode"], made["search_mode"]) == (
            base,
            "cached",
            "cached",
        )
        assert (made["uid_start_number"], made["gid_start_number"], made["mfa_support"]) == (
            2000,
            4000,
            True,
        )
        assert made["assigned_application_slug"] == f"jellyfin-{space}"
        host = f"tessera-outpost-directory.{space}.svc"
        assert data == {
            "ldap_url": f"ldap://{host}:389",
            "ldaps_url": f"ldaps://{host}:636",
            "base_dn": base,
            "bind_dn_pattern": f"cn={{username}},ou=users,{base}",
            "users_dn": f"ou=users,{base}",
            "groups_dn": f"ou=groups,{base}",
            "user_filter": "(objectClass=user)",
            "group_filter": "(objectClass=group)",
        }
        status = stored(cluster, jellyfin)["status"]
        assert (status["providerPk"], status["baseDN"]) == (made["pk"], base)
        raw = cluster.api.get("v1/secrets", space, "jellyfin-ldap")
        (owner,) = raw["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == (
            "LDAPProvider",
            stored(cluster, jellyfin)["metadata"]["uid"],
        )
        # "Search full directory" is held by exactly the users and groups of the spec.
        access = admin(core, "GET", f"providers/ldap/{made['pk']}/search_access/")
        assert access == {"users": [account["pk"]], "groups": [group["pk"]]}
        served = core_object(core, cluster, "outposts/instances/", directory)
        assert served["providers"] == [made["pk"]]

        # A change reaches the core and the Secret.
        await patch_spec(
            cluster,
            jellyfin,
            {"baseDN": "dc=media,dc=example", "mfaSupport": False, "searchUsers": []},
        )
        await eventually(
            lambda: secret(cluster, space, "jellyfin-ldap")["base_dn"] == "dc=media,dc=example"
        )
        changed = core_object(core, cluster, "providers/ldap/", jellyfin)
        assert (changed["base_dn"], changed["mfa_support"]) == ("dc=media,dc=example", False)
        access = admin(core, "GET", f"providers/ldap/{made['pk']}/search_access/")
        assert access == {"users": [], "groups": [group["pk"]]}
        await eventually(lambda: ready(cluster, jellyfin).get("observedGeneration") == 2)

        await delete(cluster, directory)
        await delete(cluster, app)
        await delete(cluster, jellyfin)
        await eventually(
            lambda: not cluster.api.alive("tessera.dev/v1alpha1/ldapproviders", space, "jellyfin")
        )
    gone = admin(core, "GET", f"providers/ldap/?name={space}/ldap/jellyfin")
    assert [p for p in gone["results"] if p["name"] == f"{space}/ldap/jellyfin"] == []


async def test_bad_ldap_specs_and_a_taken_base_dn_are_reported(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    first = ldap_provider("first", space, baseDN=f"dc=shared,dc={space}")
    second = ldap_provider("second", space, baseDN=f"dc=shared,dc={space}")
    no_key = ldap_provider("nokey", space, certificate={"name": "no such key pair"})
    no_flow = ldap_provider("noflow", space, authorizationFlow="no-such-flow")
    no_group = ldap_provider("nogroup", space, searchGroups=["no such group"])
    async with make_operator(outpost_image=IMAGE):
        await create(cluster, first)
        await is_ready(cluster, first)
        for manifest in (second, no_key, no_flow, no_group):
            await create(cluster, manifest)
        condition = await not_ready(cluster, second, "Conflict")
        assert condition["message"].startswith(
            f"spec.baseDN: base_dn 'dc=shared,dc={space}' is taken in the core by an object "
            "managed for another resource"
        )
        condition = await not_ready(cluster, no_key, "InvalidSpec")
        assert condition["message"] == (
            "spec.certificate.name: the core has no key pair named 'no such key pair'"
        )
        condition = await not_ready(cluster, no_flow, "InvalidSpec")
        assert "spec.authorizationFlow" in condition["message"]
        condition = await not_ready(cluster, no_group, "InvalidSpec")
        assert condition["message"] == (
            "spec.searchGroups[0]: the core has no group named 'no such group'"
        )
        assert not cluster.api.alive("v1/secrets", space, "second-ldap")
        # Moving the second provider to a base DN of its own makes it ready.
        await patch_spec(cluster, second, {"baseDN": f"dc=second,dc={space}"})
        await is_ready(cluster, second)
        data = secret(cluster, space, "second-ldap")
        assert data["base_dn"] == f"dc=second,dc={space}" and "ldap_url" not in data
        # An ldap Outpost naming it later tells it at once: its Secret gets the addresses.
        await create(cluster, ldap_outpost("dir", space, "second"))
        await eventually(
            lambda: (
                secret(cluster, space, "second-ldap").get("ldap_url")
                == f"ldap://tessera-outpost-dir.{space}.svc:389"
            ),
            timeout=15,
        )
