"""The objects that run an Outpost (`builders.outpost`), rendered without a cluster: each valid for
Kubernetes (kubernetes-validate, strict, oldest and newest supported version), locked down, owned
by the resource, and wired together (the Deployment's env reads the Secret's keys, the Services
select the pods, the ServiceMonitor selects the metrics Service, Traefik asks the Service); JSON
patches apply, and the ones that would rename, move or detach an object are refused."""

from __future__ import annotations

import base64
from typing import Any

import crdkit
import kubernetes_validate
import pydantic
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE, ROOT

from tessera.operator.builders import outpost as build
from tessera.operator.builders import patches
from tessera.operator.handlers import owned
from tessera.operator.resources import outpost

OWNER = {
    "apiVersion": "tessera.dev/v1alpha1",
    "kind": "Outpost",
    "metadata": {
        "name": "edge",
        "namespace": "apps",
        "uid": "5b9e1c1e-0d0e-4a8c-9a34-0a1b2c3d4e5f",
    },
}
TOKEN = "outpost-token-canary-value"
HOSTS = (
    build.Host("https://grafana.example.com", "forward_single"),
    build.Host("http://wiki.example.com:8080/", "proxy"),
    build.Host("https://grafana.example.com/other", "forward_single"),
)


def _plan(**spec: Any) -> build.Plan:
    spec.setdefault("type", "proxy")
    kwargs: dict[str, Any] = {}
    for key in ("middleware_api", "service_monitors", "hosts"):
        if key in spec:
            kwargs[key] = spec.pop(key)
    return build.Plan(
        owner=OWNER,
        spec=outpost.OutpostSpec.model_validate(spec),
        image="registry.example/tessera:1.0",
        core_url="http://tessera-server.idp.svc:80",
        browser_url="https://sso.example.com",
        token=TOKEN,
        token_pk="0f0e0d0c-0000-4000-8000-000000000001",
        outpost_uid="11111111-2222-4333-8444-555555555555",
        **kwargs,
    )


FULL = {"hosts": HOSTS, "middleware_api": "traefik.io/v1alpha1", "service_monitors": True}


def _everything(plan: build.Plan) -> dict[str, dict[str, Any]]:
    return build.build(plan).objects


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
@pytest.mark.parametrize("kind", ["proxy", "ldap"])
def test_every_object_validates_strictly(kind: str, kube: str) -> None:
    objects = _everything(_plan(type=kind, **FULL))
    expected = {"secret", "deployment", "service", "metricsService", "serviceMonitor"}
    if kind == "proxy":
        expected |= {"ingress", "middleware"}
    assert set(objects) == expected
    for component, manifest in objects.items():
        if manifest["kind"] in ("ServiceMonitor", "Middleware"):
            continue  # no bundled schema: see the tests of those two below
        kubernetes_validate.validate(manifest, kube, strict=True), component


def test_every_object_is_owned_by_the_outpost_in_its_namespace() -> None:
    for manifest in _everything(_plan(**FULL)).values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "apps"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "tessera.dev/v1alpha1",
                "kind": "Outpost",
                "name": "edge",
                "uid": OWNER["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "tessera-operator"
        assert len(meta["name"]) <= 63


def test_the_deployment_runs_tessera_outpost_locked_down() -> None:
    deployment = _everything(_plan(replicas=3, **FULL))["deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    (container,) = pod["containers"]
    assert (container["command"], container["args"]) == (["tessera"], ["outpost", "proxy"])
    assert container["image"] == "registry.example/tessera:1.0"
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    # The state directory and /tmp are emptyDirs: the root filesystem stays read-only.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {build.STATE_DIR, "/tmp"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    env = {e["name"]: e for e in container["env"]}
    assert env["AUTHENTIK_STATE_DIR"]["value"] == build.STATE_DIR
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 9000, "https": 9443, "http-metrics": 9300}
    assert env["AUTHENTIK_LISTEN__HTTP"]["value"] == "0.0.0.0:9000"
    assert env["AUTHENTIK_LISTEN__HTTPS"]["value"] == "0.0.0.0:9443"
    assert env["AUTHENTIK_LISTEN__METRICS"]["value"] == "0.0.0.0:9300"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/outpost.goauthentik.io/ping",
            "port": "http",
        }
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }


def test_the_ldap_outpost_listens_on_the_ldap_ports_and_is_probed_there() -> None:
    objects = _everything(_plan(type="ldap", **FULL))
    assert "ingress" not in objects and "middleware" not in objects
    (container,) = objects["deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["outpost", "ldap"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"ldap": 3389, "ldaps": 6636, "http-metrics": 9300}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "ldap"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AUTHENTIK_LISTEN__LDAP"] == "0.0.0.0:3389"
    assert env["AUTHENTIK_LISTEN__LDAPS"] == "0.0.0.0:6636"
    # LDAP clients expect the well-known ports: the Service maps 389 and 636 to the listeners.
    service_ports = {
        p["name"]: (p["port"], p["targetPort"]) for p in objects["service"]["spec"]["ports"]
    }
    assert service_ports == {"ldap": (389, "ldap"), "ldaps": (636, "ldaps")}


def test_the_settings_come_from_the_secret_and_roll_the_pods_when_they_change() -> None:
    plan = _plan(**FULL)
    objects = _everything(plan)
    secret = objects["secret"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "authentik_host": "http://tessera-server.idp.svc:80",
        "authentik_host_browser": "https://sso.example.com",
        "authentik_host_insecure": "false",
        "token": TOKEN,
    }
    (container,) = objects["deployment"]["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        var: {"name": secret["metadata"]["name"], "key": key} for key, var in build.SECRET_ENV
    }
    # SECURITY: the token is only in the Secret, never in the Deployment.
    assert TOKEN not in str(objects["deployment"])
    digest = objects["deployment"]["spec"]["template"]["metadata"]["annotations"]
    other = _everything(build.Plan(**{**plan.__dict__, "token": "rotated"}))["deployment"]
    assert other["spec"]["template"]["metadata"]["annotations"] != digest


def test_services_select_the_pods_and_the_monitor_selects_the_metrics_service() -> None:
    objects = _everything(_plan(serviceType="LoadBalancer", **FULL))
    pod_labels = objects["deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    for service in (objects["service"], objects["metricsService"]):
        assert service["spec"]["selector"] == selector
    assert objects["service"]["spec"]["type"] == "LoadBalancer"
    assert objects["metricsService"]["spec"]["type"] == "ClusterIP"
    assert objects["metricsService"]["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9300, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    monitor = objects["serviceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    match = monitor["spec"]["selector"]["matchLabels"]
    assert match.items() <= objects["metricsService"]["metadata"]["labels"].items()
    assert not match.items() <= objects["service"]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http-metrics", "path": "/metrics", "interval": "30s"}
    ]


def test_the_ingress_routes_each_provider_host_to_the_outpost() -> None:
    ingress = _everything(
        _plan(ingress={"className": "traefik", "tlsSecretName": "edge-tls"}, **FULL)
    )["ingress"]
    rules = {r["host"]: r["http"]["paths"] for r in ingress["spec"]["rules"]}
    assert set(rules) == {"grafana.example.com", "wiki.example.com"}
    # Forward auth: only the outpost's paths; proxy mode: everything.
    assert [p["path"] for p in rules["grafana.example.com"]] == ["/outpost.goauthentik.io"]
    assert [p["path"] for p in rules["wiki.example.com"]] == ["/"]
    backend = rules["wiki.example.com"][0]["backend"]["service"]
    assert backend == {"name": "tessera-outpost-edge", "port": {"name": "http"}}
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["grafana.example.com"], "secretName": "edge-tls"}]


def test_the_middleware_asks_the_outpost_and_passes_the_twelve_identity_headers() -> None:
    middleware = _everything(_plan(**FULL))["middleware"]
    assert middleware["apiVersion"] == "traefik.io/v1alpha1"
    auth = middleware["spec"]["forwardAuth"]
    assert auth["address"] == (
        "http://tessera-outpost-edge.apps.svc:9000/outpost.goauthentik.io/auth/traefik"
    )
    assert auth["trustForwardHeader"] is True
    assert len(auth["authResponseHeaders"]) == 12
    assert auth["authResponseHeaders"][:6] == [
        "X-authentik-username",
        "X-authentik-groups",
        "X-authentik-entitlements",
        "X-authentik-email",
        "X-authentik-name",
        "X-authentik-uid",
    ]
    assert all(h.startswith("X-authentik-") for h in auth["authResponseHeaders"])


def test_optional_objects_are_skipped_with_a_reason() -> None:
    built = build.build(_plan())
    assert set(built.objects) == {"secret", "deployment", "service", "metricsService"}
    assert "ServiceMonitor" in built.skipped["serviceMonitor"]
    assert "Middleware" in built.skipped["middleware"]
    assert "external host" in built.skipped["ingress"]
    disabled = build.build(_plan(disabledComponents=["ingress", "serviceMonitor"], **FULL))
    assert "ingress" not in disabled.objects and "serviceMonitor" not in disabled.objects
    assert disabled.skipped["ingress"] == "disabled in spec.disabledComponents"


def test_long_and_dotted_names_give_valid_service_names() -> None:
    for name in ("a" * 253, "edge.example.com", "x" * 39):
        base = build.base_name(name)
        assert base.startswith("tessera-outpost-") and len(base) <= 55
        assert "." not in base and not base.endswith("-")
        assert len(build.metrics_name(name)) <= 63
    assert build.base_name("a" * 200) != build.base_name("a" * 201)


# JSON patches ---------------------------------------------------------------------------------


def _patch(*ops: dict[str, Any]) -> list[outpost.JsonPatch]:
    return [outpost.JsonPatch.model_validate(op) for op in ops]


def test_json_patches_change_the_generated_object_only() -> None:
    deployment = _everything(_plan(**FULL))["deployment"]
    ops = _patch(
        {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"edge": "true"}},
        {
            "op": "test",
            "path": "/spec/template/spec/containers/0/env/4/name",
            "value": "AUTHENTIK_LISTEN__HTTP",
        },
        {"op": "replace", "path": "/spec/template/spec/containers/0/env/4/value", "value": ":80"},
        {"op": "remove", "path": "/spec/template/spec/containers/0/startupProbe"},
    )
    result = patches.apply("deployment", deployment, ops)
    pod = result["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"edge": "true"}
    assert pod["containers"][0]["env"][4]["value"] == ":80"
    assert "startupProbe" not in pod["containers"][0]
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]  # the input is untouched
    kubernetes_validate.validate(result, NEWEST_KUBE, strict=True)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "remove", "path": "/spec/nothing/here"}, "spec.jsonPatches.deployment[0]: remove"),
        ({"op": "test", "path": "/spec/replicas", "value": 7}, "spec.jsonPatches.deployment[0]"),
        ({"op": "add", "path": "/spec/a/b/c", "value": 1}, "spec.jsonPatches.deployment[0]"),
        ({"op": "replace", "path": "/metadata", "value": {"name": "x"}}, "may not change"),
        ({"op": "remove", "path": "/metadata"}, "may not change"),
    ],
)
def test_a_patch_that_cannot_apply_or_moves_the_object_is_named(
    op: dict[str, Any], message: str
) -> None:
    deployment = _everything(_plan(**FULL))["deployment"]
    with pytest.raises(patches.PatchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        patches.apply("deployment", deployment, _patch(op))


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/metadata/namespace", "value": "kube-system"},
        {"op": "replace", "path": "/metadata/name", "value": "someone-elses"},
        {"op": "remove", "path": "/metadata/ownerReferences"},
        {"op": "replace", "path": "/kind", "value": "Pod"},
        {"op": "move", "from": "/metadata/ownerReferences", "path": "/spec/x"},
    ],
)
def test_patches_of_the_identity_are_refused_by_the_model(op: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="may not change"):
        outpost.JsonPatch.model_validate(op)


def test_copying_from_the_identity_is_allowed() -> None:
    ops = _patch({"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/copied"})
    secret = _everything(_plan(**FULL))["secret"]
    assert (
        patches.apply("secret", secret, ops)["metadata"]["labels"]["copied"]
        == secret["metadata"]["name"]
    )


def test_the_forward_auth_example_names_the_middleware_the_operator_writes() -> None:
    docs = {
        (d["kind"], d["metadata"]["name"]): d
        for d in crdkit.documents(ROOT / "examples" / "forward-auth.yaml")
    }
    resource = docs["Outpost", "edge"]
    provider = docs["ProxyProvider", "whoami"]
    owner = {**resource, "metadata": {**resource["metadata"], "uid": "u-1"}}
    plan = build.Plan(
        owner=owner,
        spec=outpost.OutpostSpec.model_validate(resource["spec"]),
        image="tessera",
        core_url="http://tessera-server.tessera.svc:80",
        browser_url="",
        token=TOKEN,
        token_pk="t",
        outpost_uid="o",
        hosts=(build.Host(provider["spec"]["externalHost"], provider["spec"]["mode"]),),
        middleware_api="traefik.io/v1alpha1",
    )
    objects = build.build(plan).objects
    deployment = patches.apply("deployment", objects["deployment"], plan.spec.patches("deployment"))
    kubernetes_validate.validate(deployment, NEWEST_KUBE, strict=True)
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"].items() <= build.selector(plan).items()
    meta = objects["middleware"]["metadata"]
    annotation = docs["Ingress", "whoami"]["metadata"]["annotations"]
    reference = annotation["traefik.ingress.kubernetes.io/router.middlewares"]
    assert reference == f"{meta['namespace']}-{meta['name']}@kubernetescrd"
    (rule,) = objects["ingress"]["spec"]["rules"]
    assert rule["host"] == docs["Ingress", "whoami"]["spec"]["rules"][0]["host"]
    assert rule["http"]["paths"][0]["path"] == "/outpost.goauthentik.io"
    application = docs["Application", "whoami"]
    assert application["spec"]["providerRef"] == {"kind": "ProxyProvider", "name": "whoami"}


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            {"op": "add", "path": "/spec/template/spec/serviceAccountName", "value": "admin"},
            "the pod's serviceAccountName",
        ),
        (
            {
                "op": "replace",
                "path": "/spec/template/spec/automountServiceAccountToken",
                "value": True,
            },
            "the pod's automountServiceAccountToken",
        ),
        (
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
            "the pod's hostNetwork",
        ),
        (
            {"op": "remove", "path": "/spec/template/spec/securityContext"},
            "the pod's securityContext",
        ),
        (
            {
                "op": "add",
                "path": "/spec/template/spec/containers/0/securityContext/privileged",
                "value": True,
            },
            "containers[0] must keep",
        ),
        (
            {
                "op": "add",
                "path": "/spec/template/spec/containers/-",
                "value": {"name": "sidecar", "image": "busybox"},
            },
            "containers[1] must keep",
        ),
        (
            {
                "op": "add",
                "path": "/spec/template/spec/volumes/-",
                "value": {"name": "root", "hostPath": {"path": "/"}},
            },
            "volumes[2] may only be",
        ),
    ],
)
def test_a_patch_cannot_give_the_pod_more_than_the_outpost_needs(
    op: dict[str, Any], message: str
) -> None:
    """An attack: whoever may create an Outpost tries to run a pod with the namespace's powerful
    service account, the node's network or files, or privileges, through a JSON patch."""
    deployment = _everything(_plan(**FULL))["deployment"]
    with pytest.raises(patches.PatchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        patches.apply("deployment", deployment, _patch(op))


def test_a_sidecar_with_the_same_security_context_and_a_config_map_volume_are_allowed() -> None:
    deployment = _everything(_plan(**FULL))["deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    sidecar = {
        "name": "log-shipper",
        "image": "registry.example/shipper:1",
        "securityContext": container["securityContext"],
    }
    ops = _patch(
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": sidecar},
        {
            "op": "add",
            "path": "/spec/template/spec/volumes/-",
            "value": {"name": "extra", "configMap": {"name": "shipper"}},
        },
        {"op": "add", "path": "/spec/template/spec/tolerations", "value": [{"operator": "Exists"}]},
    )
    result = patches.apply("deployment", deployment, ops)
    kubernetes_validate.validate(result, NEWEST_KUBE, strict=True)
    assert len(result["spec"]["template"]["spec"]["containers"]) == 2


def test_a_field_no_longer_wanted_is_removed_by_the_merge_patch() -> None:
    last = {"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"x": {"y": 1}, "l": [1]}}
    want = {"metadata": {"annotations": {"a": "1"}}, "spec": {"l": [2]}}
    assert owned.with_removals(last, want) == {
        "metadata": {"annotations": {"a": "1", "b": None}},
        "spec": {"l": [2], "x": None},
    }
    assert owned.with_removals(None, want) == want
    assert owned.contains({"a": 1, "b": {"c": [1, 2], "d": 0}}, {"b": {"c": [1, 2]}})
    assert not owned.contains({"b": {"c": [1, 2]}}, {"b": {"c": [1]}})
