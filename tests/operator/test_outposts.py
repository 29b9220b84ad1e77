"""ProxyProvider and Outpost resources end to end: the operator (Kopf against the emulated API
server) makes the core proxy provider and outpost through a real core, writes the token Secret,
Deployment, Services, Ingress and, where the cluster serves them, ServiceMonitor and Traefik
Middleware, all owned by the Outpost; keeps them as the spec says (changes, JSON patches, drift);
reports bad specs in the Ready condition; and deletes the core objects with the resources. Last,
the outpost process is started exactly as the generated Deployment describes it and must connect
to the core and answer its probes."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmockkit
import kubernetes_validate
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE
from helpers import BOOTSTRAP_TOKEN, Server, free_port
from kmockkit import Cluster, eventually
from operatorkit import (
    admin,
    application,
    core_object,
    create,
    delete,
    events,
    is_ready,
    not_ready,
    outpost,
    patch_spec,
    proxy_provider,
    secret,
    start_container,
    stored,
)

pytestmark = pytest.mark.slow

IMAGE = "registry.example/tessera:test"
BASE = "tessera-outpost-"
OBJECTS = {  # resource -> kind of the objects an Outpost owns
    "v1/secrets": "Secret",
    "apps/v1/deployments": "Deployment",
    "v1/services": "Service",
    "networking.k8s.io/v1/ingresses": "Ingress",
    "traefik.io/v1alpha1/middlewares": "Middleware",
    "monitoring.coreos.com/v1/servicemonitors": "ServiceMonitor",
}


def ns() -> str:
    return f"o-{uuid.uuid4().hex[:8]}"


def core_outpost(core: Server, cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    return core_object(core, cluster, "outposts/instances/", manifest)


def core_proxy(core: Server, cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    return core_object(core, cluster, "providers/proxy/", manifest)


def owned_objects(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """`Kind/name` -> object, of every object of the kinds an Outpost owns in `namespace`."""
    found = {}
    for key in list(cluster.api.objects):
        resource, space, name = key
        obj = cluster.api.objects[key]
        where = f"{resource.group}/{resource.version}/{resource.plural}".lstrip("/")
        if obj.deleted or space != namespace or where not in OBJECTS:
            continue
        found[f"{OBJECTS[where]}/{name}"] = obj.raw
    return found


async def test_an_outpost_becomes_a_core_outpost_and_objects_owned_by_it(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    wiki = proxy_provider("wiki", space, mode="proxy", internalHost="http://wiki.svc:8080")
    grafana = proxy_provider("grafana", space)
    app = application(
        "wiki", space, f"wiki-{space}", providerRef={"kind": "ProxyProvider", "name": "wiki"}
    )
    edge = outpost("edge", space, "wiki", "grafana")
    async with make_operator(outpost_image=IMAGE):
        for manifest in (wiki, grafana, app, edge):
            await create(cluster, manifest)
        await is_ready(cluster, wiki, grafana, app, edge)
        objects = await eventually(
            lambda: len(owned_objects(cluster, space)) == 5 and owned_objects(cluster, space)
        )
    # The core: two proxy providers, one linked to the application; one outpost serving both.
    made = core_proxy(core, cluster, wiki)
    assert (made["mode"], made["external_host"]) == ("proxy", "https://wiki.example.com")
    assert made["internal_host"] == "http://wiki.svc:8080"
    assert made["name"] == f"{space}/proxy/wiki"
    assert admin(core, "GET", f"core/applications/wiki-{space}/")["provider"] == made["pk"]
    remote = core_outpost(core, cluster, edge)
    assert remote["type"] == "proxy" and remote["name"] == f"{space}/edge"
    assert sorted(remote["providers"]) == sorted(
        [made["pk"], core_proxy(core, cluster, grafana)["pk"]]
    )
    status = stored(cluster, edge)["status"]
    assert status["outpostUID"] == remote["pk"]
    assert stored(cluster, wiki)["status"]["providerPk"] == made["pk"]
    # The objects: every one valid for Kubernetes and owned by the Outpost.
    name = BASE + "edge"
    assert set(objects) == {
        f"Secret/{name}",
        f"Deployment/{name}",
        f"Service/{name}",
        f"Service/{name}-metrics",
        f"Ingress/{name}",
    }
    uid = stored(cluster, edge)["metadata"]["uid"]
    for obj in objects.values():
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Outpost",
            "edge",
            uid,
            True,
        )
        body = {k: v for k, v in obj.items() if k != "status"}
        for kube in (OLDEST_KUBE, NEWEST_KUBE):
            meta = {k: v for k, v in body["metadata"].items() if k not in _SERVER_SET}
            kubernetes_validate.validate({**body, "metadata": meta}, kube, strict=True)
    # The optional kinds the cluster does not serve are skipped, and the status says why.
    assert sorted(s.split(":")[0] for s in status["skipped"]) == ["middleware", "serviceMonitor"]
    # The token: the outpost's own API token, only in the Secret.
    data = secret(cluster, space, name)
    identifier = remote["token_identifier"]
    assert identifier == f"ak-outpost-{remote['pk']}-api"
    assert data["token"] == admin(core, "GET", f"core/tokens/{identifier}/view_key/")["key"]
    assert data["authentik_host"] == core.url
    assert data["token"] not in str(stored(cluster, edge))
    assert data["token"] not in str(events(cluster, space, "edge"))
    deployment = objects[f"Deployment/{name}"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    rules = {r["host"] for r in objects[f"Ingress/{name}"]["spec"]["rules"]}
    assert rules == {"wiki.example.com", "grafana.example.com"}


_SERVER_SET = ("uid", "resourceVersion", "generation", "creationTimestamp")


async def test_optional_kinds_the_cluster_serves_are_written_and_disabled_ones_removed(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    kmockkit.declare_optional(cluster.api)
    space = ns()
    grafana = proxy_provider("grafana", space)
    edge = outpost("edge", space, "grafana")
    name = BASE + "edge"
    async with make_operator(outpost_image=IMAGE):
        await create(cluster, grafana)
        await create(cluster, edge)
        await is_ready(cluster, grafana, edge)
        objects = await eventually(
            lambda: len(owned_objects(cluster, space)) == 7 and owned_objects(cluster, space)
        )
        middleware = objects[f"Middleware/{name}"]
        auth = middleware["spec"]["forwardAuth"]
        assert auth["address"] == (
            f"http://{name}.{space}.svc:9000/outpost.goauthentik.io/auth/traefik"
        )
        assert auth["trustForwardHeader"] is True and len(auth["authResponseHeaders"]) == 12
        monitor = objects[f"ServiceMonitor/{name}"]
        metrics = objects[f"Service/{name}-metrics"]
        match = monitor["spec"]["selector"]["matchLabels"]
        assert match.items() <= metrics["metadata"]["labels"].items()
        assert stored(cluster, edge)["status"]["skipped"] == []
        await patch_spec(cluster, edge, {"disabledComponents": ["middleware", "serviceMonitor"]})
        await eventually(lambda: len(owned_objects(cluster, space)) == 5)
    assert not {f"Middleware/{name}", f"ServiceMonitor/{name}"} & set(owned_objects(cluster, space))


async def test_changes_patches_and_drift_reach_the_objects(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    grafana = proxy_provider("grafana", space)
    edge = outpost("edge", space, "grafana")
    name = BASE + "edge"
    deployments = f"/apis/apps/v1/namespaces/{space}/deployments/{name}"

    def deployment() -> dict[str, Any]:
        return cluster.api.get("apps/v1/deployments", space, name)

    def service_annotations() -> dict[str, str]:
        found: dict[str, str] = cluster.api.get("v1/services", space, name)["metadata"].get(
            "annotations", {}
        )
        return found

    async with make_operator(outpost_image=IMAGE, resync_seconds=0.5):
        await create(cluster, grafana)
        await create(cluster, edge)
        await is_ready(cluster, grafana, edge)
        patches = {
            "deployment": [
                {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"edge": "yes"}}
            ],
            "service": [
                {"op": "add", "path": "/metadata/annotations", "value": {"lb": "internal"}}
            ],
        }
        await patch_spec(cluster, edge, {"replicas": 2, "jsonPatches": patches})
        await eventually(lambda: deployment()["spec"]["replicas"] == 2)
        pod = deployment()["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"edge": "yes"}
        await eventually(lambda: service_annotations().get("lb") == "internal")
        # Patches taken away are taken away from the objects too.
        await patch_spec(cluster, edge, {"jsonPatches": None})
        await eventually(lambda: "nodeSelector" not in deployment()["spec"]["template"]["spec"])
        await eventually(lambda: "lb" not in service_annotations())
        # Someone scales the Deployment by hand: the timer puts the spec's value back.
        answer = await cluster.api.patch(
            deployments,
            json={"spec": {"replicas": 9}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status == 200
        assert (await answer.json())["spec"]["replicas"] == 9
        await eventually(lambda: deployment()["spec"]["replicas"] == 2, 10)
        # No provider has a host any more: the Ingress goes.
        await patch_spec(cluster, edge, {"providerRefs": []})
        await eventually(
            lambda: not cluster.api.alive("networking.k8s.io/v1/ingresses", space, name)
        )
        assert core_outpost(core, cluster, edge)["providers"] == []


async def test_deleting_the_resources_deletes_the_core_outpost_its_token_and_the_provider(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    grafana = proxy_provider("grafana", space)
    edge = outpost("edge", space, "grafana")
    kept = outpost("kept", space, deletionPolicy="Orphan")
    async with make_operator(outpost_image=IMAGE):
        for manifest in (grafana, edge, kept):
            await create(cluster, manifest)
        await is_ready(cluster, grafana, edge, kept)
        remote = core_outpost(core, cluster, edge)
        orphan = core_outpost(core, cluster, kept)
        provider_pk = core_proxy(core, cluster, grafana)["pk"]
        for manifest in (edge, kept, grafana):
            await delete(cluster, manifest)
        for plural, name in (
            ("outposts", "edge"),
            ("outposts", "kept"),
            ("proxyproviders", "grafana"),
        ):
            await eventually(
                lambda p=plural, n=name: (
                    not cluster.api.alive(f"tessera.dev/v1alpha1/{p}", space, n)
                )
            )
    token = remote["token_identifier"]
    assert (
        core.request("GET", f"/api/v3/outposts/instances/{remote['pk']}/", BOOTSTRAP_TOKEN)[0]
        == 404
    )
    assert core.request("GET", f"/api/v3/core/tokens/{token}/", BOOTSTRAP_TOKEN)[0] == 404
    assert core.request("GET", f"/api/v3/providers/proxy/{provider_pk}/", BOOTSTRAP_TOKEN)[0] == 404
    left = admin(core, "GET", f"outposts/instances/{orphan['pk']}/")
    assert left["managed"] is None  # released: an admin may edit it now


async def test_bad_specs_are_reported_and_the_operator_keeps_working(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    name = BASE
    waiting = outpost("waiting", space, "later")
    bad_patch = outpost(
        "badpatch",
        space,
        jsonPatches={"deployment": [{"op": "test", "path": "/spec/replicas", "value": 5}]},
    )
    radius = outpost("radius", space, type="radius")
    ldap_with_proxy = outpost("mixed", space, "later", type="ldap")
    squatter = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name + "taken", "namespace": space},
        "spec": {"ports": [{"port": 80}]},
    }
    taken = outpost("taken", space)
    async with make_operator(outpost_image=IMAGE):
        answer = await cluster.api.post(f"/api/v1/namespaces/{space}/services", json=squatter)
        assert answer.status in (200, 201)
        for manifest in (waiting, bad_patch, radius, ldap_with_proxy, taken):
            await create(cluster, manifest)
        pending = await not_ready(cluster, waiting, "ProviderNotReady")
        patch_failed = await not_ready(cluster, bad_patch, "InvalidSpec")
        wrong_type = await not_ready(cluster, radius, "InvalidSpec")
        mixed = await not_ready(cluster, ldap_with_proxy, "InvalidSpec")
        conflict = await not_ready(cluster, taken, "Conflict")
        # The missing provider appears: the waiting Outpost goes Ready on its own.
        await create(cluster, proxy_provider("later", space))
        await is_ready(cluster, waiting)
    assert pending["message"].startswith("spec.providerRefs[0].name: ProxyProvider 'later'")
    assert patch_failed["message"].startswith("spec.jsonPatches.deployment[0]: test /spec/replicas")
    assert wrong_type["message"].startswith("spec.type:")
    assert "only a proxy outpost serves ProxyProviders" in mixed["message"]
    assert conflict["message"].startswith(f"Service/{name}taken exists and is not owned")
    # Nothing of a refused patch is written; the foreign Service is untouched.
    assert not cluster.api.alive("apps/v1/deployments", space, name + "badpatch")
    assert (
        "ownerReferences" not in cluster.api.get("v1/services", space, name + "taken")["metadata"]
    )
    assert "labels" not in cluster.api.get("v1/services", space, name + "taken")["metadata"]


def _listen_patches(ports: dict[str, int]) -> list[dict[str, Any]]:
    """JSON patches moving the outpost's listeners to free local ports: this machine is one
    network namespace for every test, not a pod's own."""
    container = "/spec/template/spec/containers/0"
    ops: list[dict[str, Any]] = []
    for index, (env, name) in enumerate(
        (
            ("AUTHENTIK_LISTEN__HTTP", "http"),
            ("AUTHENTIK_LISTEN__HTTPS", "https"),
            ("AUTHENTIK_LISTEN__METRICS", "http-metrics"),
        )
    ):
        ops += [
            {"op": "test", "path": f"{container}/env/{4 + index}/name", "value": env},
            {
                "op": "replace",
                "path": f"{container}/env/{4 + index}/value",
                "value": f"127.0.0.1:{ports[name]}",
            },
            {"op": "test", "path": f"{container}/ports/{index}/name", "value": name},
            {
                "op": "replace",
                "path": f"{container}/ports/{index}/containerPort",
                "value": ports[name],
            },
        ]
    return ops


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_the_outpost_runs_as_its_deployment_describes_and_connects(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any], tmp_path: Path
) -> None:
    space = ns()
    ports = {"http": free_port(), "https": free_port(), "http-metrics": free_port()}
    grafana = proxy_provider("grafana", space)
    app = application(
        "grafana",
        space,
        f"grafana-{space}",
        providerRef={"kind": "ProxyProvider", "name": "grafana"},
    )
    edge = outpost("edge", space, "grafana", jsonPatches={"deployment": _listen_patches(ports)})
    name = BASE + "edge"
    async with make_operator(outpost_image=IMAGE, observe_seconds=0.5):
        for manifest in (grafana, app, edge):
            await create(cluster, manifest)
        await is_ready(cluster, grafana, app, edge)
        deployment = cluster.api.get("apps/v1/deployments", space, name)
        secrets = {name: secret(cluster, space, name)}
        process = start_container(deployment, secrets, tmp_path)
        try:
            remote = core_outpost(core, cluster, edge)
            health = f"outposts/instances/{remote['pk']}/health/"
            instances = await eventually(lambda: admin(core, "GET", health), 30)
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            probe = container["readinessProbe"]["httpGet"]
            url = f"http://127.0.0.1:{process.ports[probe['port']]}{probe['path']}"
            assert await asyncio.to_thread(_get, url) == 204
            # The provider's settings reached the outpost: its host is served (401 to a
            # request without a session, as nginx's auth_request wants it).
            check = f"http://127.0.0.1:{ports['http']}/outpost.goauthentik.io/auth/nginx"
            original = {"X-Original-URL": "https://grafana.example.com/dashboards"}
            status = await asyncio.to_thread(_get, check, original)
            assert status == 401
            # The status shows the instance the core sees, and the ready replicas once the
            # Deployment controller (played here) reports them.
            await eventually(lambda: stored(cluster, edge)["status"]["connectedInstances"] == 1, 10)
            answer = await cluster.api.patch(
                f"/apis/apps/v1/namespaces/{space}/deployments/{name}/status",
                json={"status": {"readyReplicas": 1, "replicas": 1}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert answer.status == 200
            await eventually(lambda: stored(cluster, edge)["status"]["readyReplicas"] == 1, 10)
            # Read while the outpost runs: once it stops, the core forgets the instance and the
            # operator's next look (every 0.5 s here) lists none.
            (instance,) = instances
            listed = stored(cluster, edge)["status"]["instances"]
            assert [i["uid"] for i in listed] == [instance["uid"]]
        finally:
            code = process.stop()
    assert code == 0, process.output()
    assert process.env["AUTHENTIK_HOST"] == core.url
    assert process.env["AUTHENTIK_STATE_DIR"].startswith(str(tmp_path))
    assert json.dumps(instance)  # the health entry is authentik's shape, plain JSON


def _write(core: Server, method: str, path: str, marker: str, body: Any) -> int:
    """An admin write speaking for the operator's object (its marker header), as a careless
    script might."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{core.url}/api/v3/{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {BOOTSTRAP_TOKEN}")
    request.add_header("X-Tessera-Managed-By", marker)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_a_proxy_provider_follows_its_spec_and_drift_is_undone(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    wiki = proxy_provider("wiki", space, skipPathRegex=["^/health$"])
    edge = outpost("edge", space, "wiki")
    async with make_operator(outpost_image=IMAGE, resync_seconds=0.5):
        await create(cluster, wiki)
        await create(cluster, edge)
        await is_ready(cluster, wiki, edge)
        made = core_proxy(core, cluster, wiki)
        assert (made["mode"], made["skip_path_regex"]) == ("forward_single", "^/health$")
        # Without the marker, an admin's write is refused: the provider is the cluster's.
        status, _ = core.request(
            "PATCH", f"/api/v3/providers/proxy/{made['pk']}/", BOOTSTRAP_TOKEN, {"mode": "proxy"}
        )
        assert status == 409
        drift = {"external_host": "https://evil.example.com", "intercept_header_auth": False}
        assert (
            _write(core, "PATCH", f"providers/proxy/{made['pk']}/", made["managed"], drift) == 200
        )
        await eventually(
            lambda: core_proxy(core, cluster, wiki)["external_host"] == "https://wiki.example.com"
        )
        assert core_proxy(core, cluster, wiki)["intercept_header_auth"] is True
        # A change of the spec reaches the core, and the outpost's Ingress follows the host.
        await patch_spec(cluster, wiki, {"externalHost": "https://docs.example.com"})
        await eventually(
            lambda: core_proxy(core, cluster, wiki)["external_host"] == "https://docs.example.com"
        )
        # The Outpost learns the new host at its next reconcile (here the drift timer's).
        await eventually(
            lambda: (
                [
                    r["host"]
                    for r in cluster.api.get(
                        "networking.k8s.io/v1/ingresses", space, BASE + "edge"
                    )["spec"]["rules"]
                ]
                == ["docs.example.com"]
            ),
            10,
        )
        # The outpost's own core object is corrected too: a provider removed by hand comes back.
        remote = core_outpost(core, cluster, edge)
        assert (
            _write(
                core,
                "PATCH",
                f"outposts/instances/{remote['pk']}/",
                remote["managed"],
                {"providers": []},
            )
            == 200
        )
        await eventually(lambda: core_outpost(core, cluster, edge)["providers"] == [made["pk"]])
    assert stored(cluster, wiki)["status"]["externalHost"] == "https://docs.example.com"
    assert stored(cluster, wiki)["status"]["observedGeneration"] == 2


async def test_an_outpost_without_an_image_needs_the_operators_default(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    bare = outpost("bare", space, type="ldap")
    chosen = outpost("chosen", space, type="ldap", image="registry.example/tessera:2")
    async with make_operator():  # no TESSERA_OUTPOST_IMAGE
        await create(cluster, bare)
        await create(cluster, chosen)
        missing = await not_ready(cluster, bare, "InvalidSpec")
        await is_ready(cluster, chosen)
    assert missing["message"].startswith("spec.image: required")
    deployment = cluster.api.get("apps/v1/deployments", space, BASE + "chosen")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["args"]) == (
        "registry.example/tessera:2",
        ["outpost", "ldap"],
    )
    assert container["readinessProbe"]["tcpSocket"] == {"port": "ldap"}
    # An ldap outpost has no routes: no Ingress, no Middleware, and nothing in the core is made
    # for the resource that could not be reconciled.
    assert not cluster.api.alive("networking.k8s.io/v1/ingresses", space, BASE + "chosen")
    names = [
        o["name"]
        for o in admin(core, "GET", f"outposts/instances/?name__iexact={space}/bare")["results"]
    ]
    assert names == []


async def test_a_provider_tells_its_outposts_at_once(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    """Neither the retry backoff (a minute here) nor the drift timer (five minutes) is what
    brings the Outpost along: the provider's reconcile annotates it."""
    space = ns()
    edge = outpost("edge", space, "wiki")
    wiki = proxy_provider("wiki", space)
    ingress = BASE + "edge"

    def hosts() -> list[str]:
        rules = cluster.api.get("networking.k8s.io/v1/ingresses", space, ingress)["spec"]["rules"]
        return [r["host"] for r in rules]

    async with make_operator(outpost_image=IMAGE, retry_base_seconds=60):
        await create(cluster, edge)
        await not_ready(cluster, edge, "ProviderNotReady")
        await create(cluster, wiki)
        await is_ready(cluster, wiki, edge, timeout=15)
        assert hosts() == ["wiki.example.com"]
        await patch_spec(cluster, wiki, {"externalHost": "https://docs.example.com"})
        await eventually(lambda: hosts() == ["docs.example.com"], 15)
    annotations = stored(cluster, edge)["metadata"]["annotations"]
    told = [k for k in annotations if k.startswith("tessera.dev/provider-")]
    assert len(told) == 1 and len(told[0].split("/")[1]) <= 63
