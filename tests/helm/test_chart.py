"""The Helm chart (helm/tessera): rendered by a real Helm, linted, and every object validated.

Each rendered object is checked with kubernetes-validate in strict mode (unknown fields are errors)
against the oldest and the newest Kubernetes version the chart supports; the ServiceMonitor, a
Prometheus Operator kind with no bundled schema, is checked against the Services it selects. The
values schema is shown to refuse bad values before anything renders, and the core's own settings
loader reads the environment the chart gives the server and the worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from chartkit import (
    CHART,
    NAMESPACE,
    NEWEST_KUBE,
    OLDEST_KUBE,
    RELEASE,
    Rendered,
    external_values,
    find,
    pod_specs,
)

from tessera.core import config

Render = Callable[[dict[str, Any]], list[Rendered]]
FULL = f"{RELEASE}-tessera"
VALUE_SETS = {"default": dict[str, Any](), "external": external_values()}


def _validate_all(objects: list[Rendered], kube: str) -> set[str]:
    kinds = set()
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            continue  # no schema bundled: see test_the_service_monitor_scrapes_every_metrics_port
        kubernetes_validate.validate(obj, kube, strict=True)
        kinds.add(obj["kind"])
    return kinds


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_validates_strictly(
    render: Render, values: dict[str, Any], kube: str
) -> None:
    kinds = _validate_all(render(values), kube)
    assert {"Deployment", "Service", "Job", "ServiceAccount"} <= kinds
    assert {"ClusterRole", "Role"} & kinds


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_finds_no_errors_or_warnings(values: dict[str, Any], kube: str) -> None:
    result = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{kube}")
    assert result["errors"] == []
    # Severity 1 is Helm's INFO ("icon is recommended"); 2 and above are warnings and errors.
    assert [m for m in result["messages"] if m["severity"] > 1] == []


def test_default_install_bundles_postgresql_and_redis_as_statefulsets(render: Render) -> None:
    objects = render({})
    assert find(objects, "StatefulSet", f"{FULL}-postgresql")
    assert find(objects, "StatefulSet", f"{FULL}-redis")
    env = _env(pod_specs(objects)[f"{FULL}-server"], "server")
    assert env["AUTHENTIK_POSTGRESQL__HOST"]["value"] == f"{FULL}-postgresql"
    assert env["AUTHENTIK_REDIS__HOST"]["value"] == f"{FULL}-redis"
    assert env["AUTHENTIK_POSTGRESQL__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULL}-postgresql",
        "key": "password",
    }
    assert not [o for o in objects if o["kind"] in ("Ingress", "ServiceMonitor")]


def test_external_values_use_the_external_databases_and_render_no_statefulset(
    render: Render,
) -> None:
    objects = render(external_values())
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    for name in (f"{FULL}-server", f"{FULL}-worker"):
        env = _env(pod_specs(objects)[name], name.rsplit("-", 1)[1])
        assert env["AUTHENTIK_POSTGRESQL__HOST"]["value"] == "pg.databases.svc"
        assert env["AUTHENTIK_POSTGRESQL__NAME"]["value"] == "tessera"
        assert env["AUTHENTIK_POSTGRESQL__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "tessera-pg",
            "key": "password",
        }
        assert env["AUTHENTIK_REDIS__HOST"]["value"] == "redis.databases.svc"
        assert env["AUTHENTIK_REDIS__DB"]["value"] == "2"
    ingress = find(objects, "Ingress", f"{FULL}-server")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "sso.example.com"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{FULL}-server", "port": {"name": "http"}}


def _env(pod: Rendered, container: str) -> dict[str, Rendered]:
    (spec,) = [c for c in pod["containers"] if c["name"] == container]
    return {e["name"]: e for e in spec["env"]}


def _container(pod: Rendered, name: str) -> Rendered:
    (spec,) = [c for c in pod["containers"] if c["name"] == name]
    return spec


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_is_locked_down_and_sized(render: Render, values: dict[str, Any]) -> None:
    pods = pod_specs(render(values))
    assert pods
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), name


def test_only_the_operator_and_the_secrets_hook_get_a_service_account_token(
    render: Render,
) -> None:
    for name, pod in pod_specs(render({})).items():
        if name in (f"{FULL}-operator", HOOK):
            assert pod["serviceAccountName"] == name
        else:
            assert pod["automountServiceAccountToken"] is False, name


def test_the_server_runs_server_with_probes_on_the_health_endpoints(render: Render) -> None:
    pod = pod_specs(render({}))[f"{FULL}-server"]
    server = _container(pod, "server")
    assert server["args"] == ["server"]
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {
        "http": 9000,
        "metrics": 9300,
    }
    assert server["livenessProbe"]["httpGet"] == {"path": "/-/health/live/", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/-/health/ready/", "port": "http"}
    assert _container(pod_specs(render({}))[f"{FULL}-worker"], "worker")["args"] == ["worker"]


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "REDISCLI_AUTH")


def test_secrets_reach_containers_only_through_secret_refs(render: Render) -> None:
    for values in VALUE_SETS.values():
        for name, pod in pod_specs(render(values)).items():
            for c in pod["containers"]:
                for e in c.get("env", []):
                    if any(
                        w in e["name"] for w in ("PASSWORD", "SECRET", "TOKEN", "REDISCLI_AUTH")
                    ):
                        assert "value" not in e, f"{name}: {e['name']} inline"
                        assert "secretKeyRef" in e["valueFrom"], f"{name}: {e['name']}"


HOOK = f"{FULL}-secrets-hook"
HOOK_ANNOTATIONS = {
    "helm.sh/hook": "pre-install,pre-upgrade",
    "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
}


def _ensured(objects: list[Rendered]) -> dict[str, dict[str, int]]:
    """What the secrets hook Job makes: Secret name -> key -> length, parsed as the command does."""
    from tessera.core.cli import commands
    from tessera.operator import secretgen

    job = find(objects, "Job", HOOK)
    args = _container(job["spec"]["template"]["spec"], "ensure-secrets")["args"]
    parsed = commands.parser().parse_args(args)  # the chart's arguments are the command's
    assert parsed.namespace == NAMESPACE
    return {w.name: dict(w.keys) for w in map(secretgen.Wanted.parse, parsed.secret)}


def test_helm_template_renders_the_same_twice_and_no_generated_value(
    render_files: Callable[[dict[str, Any]], dict[str, str]], render: Render
) -> None:
    """Argo CD renders with `helm template` on every sync, where `lookup` answers nothing: the
    output must not change between renders, or each sync would replace the secret key."""
    for values in VALUE_SETS.values():
        assert render_files(values) == render_files(values)
        assert not [o for o in render(values) if o["kind"] == "Secret"]


def test_the_hook_generates_every_secret_the_pods_read_and_long_enough(render: Render) -> None:
    objects = render({})
    ensured = _ensured(objects)
    assert ensured == {
        f"{FULL}-secrets": {"secret-key": 64, "bootstrap-token": 64},
        f"{FULL}-postgresql": {"password": 40},
        f"{FULL}-redis": {"password": 40},
    }
    assert ensured[f"{FULL}-secrets"]["secret-key"] >= config.MIN_SECRET_KEY_LENGTH
    read = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, pod in pod_specs(objects).items()
        for c in pod["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert read == {(name, key) for name, keys in ensured.items() for key in keys}
    # Hooks run before anything else of an install or upgrade, and are gone once done.
    hooked = [o for o in objects if o["metadata"]["name"] == HOOK]
    assert {o["kind"] for o in hooked} == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    for o in hooked:
        assert HOOK_ANNOTATIONS.items() <= o["metadata"]["annotations"].items(), o["kind"]
    weights = {o["kind"]: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in hooked}
    assert weights["Job"] > max(weights[k] for k in ("ServiceAccount", "Role", "RoleBinding"))


def test_the_secrets_hook_may_create_secrets_and_touch_only_its_own(render: Render) -> None:
    role = find(render({}), "Role", HOOK)
    granted = _rules(role)
    assert set(granted) == {("", "secrets", v) for v in ("create", "get", "patch")}
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert len(named) == 1 and set(named[0]["verbs"]) == {"get", "patch"}
    assert set(named[0]["resourceNames"]) == set(_ensured(render({})))
    binding = find(render({}), "RoleBinding", HOOK)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": HOOK, "namespace": NAMESPACE}]


def test_brought_secrets_are_not_generated(render: Render) -> None:
    objects = render({"secrets": {"existingSecret": "my-tessera"}})
    assert f"{FULL}-secrets" not in _ensured(objects)
    # Everything brought (external_values: external PostgreSQL and Redis): no hook at all.
    values = {**external_values(), "secrets": {"existingSecret": "my-tessera"}}
    assert not [o for o in render(values) if o["metadata"]["name"] == HOOK]


def test_an_existing_secret_replaces_the_generated_one(render: Render) -> None:
    objects = render({"secrets": {"existingSecret": "my-tessera"}})
    assert not [o for o in objects if o["metadata"]["name"] == f"{FULL}-secrets"]
    env = _env(pod_specs(objects)[f"{FULL}-server"], "server")
    assert env["AUTHENTIK_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "my-tessera"
    op = _env(pod_specs(objects)[f"{FULL}-operator"], "operator")
    assert op["AUTHENTIK_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-tessera"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_core_settings_loader_accepts_the_rendered_environment(
    render: Render, values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misspelt name would be ignored (extra="ignore"): set each, then read it back by its path.
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIXES):
            monkeypatch.delenv(name)
    pods = pod_specs(render(values))
    for component in ("server", "worker"):
        env = _env(pods[f"{FULL}-{component}"], component)
        given = {
            name: e.get("value", "s" * config.MIN_SECRET_KEY_LENGTH) for name, e in env.items()
        }
        for name, value in given.items():
            monkeypatch.setenv(name, value)
        settings = config.load()
        assert not settings.embedded  # PostgreSQL is configured: the data directory is scratch
        for name, value in given.items():
            current: Any = settings
            for part in name.removeprefix("AUTHENTIK_").lower().split("__"):
                part = "from_" if part == "from" else part  # a Python keyword
                assert hasattr(current, part), f"{name}: no such setting"
                current = getattr(current, part)
            shown = current.get_secret_value() if hasattr(current, "get_secret_value") else current
            if isinstance(shown, bool):
                shown = str(shown).lower()
            assert str(shown) == value, name


def test_the_operator_reaches_the_core_service_with_the_bootstrap_token(render: Render) -> None:
    objects = render({})
    pod = pod_specs(objects)[f"{FULL}-operator"]
    op = _container(pod, "operator")
    assert op["args"] == ["operator", "--concurrency=16"]
    env = _env(pod, "operator")
    service = find(objects, "Service", f"{FULL}-server")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert env["AUTHENTIK_HOST"]["value"] == f"http://{FULL}-server.{NAMESPACE}.svc:{port}"
    server_env = _env(pod_specs(objects)[f"{FULL}-server"], "server")
    # One generated value: the core turns it into akadmin's API token, the operator presents it.
    assert (
        env["AUTHENTIK_TOKEN"]["valueFrom"] == server_env["AUTHENTIK_BOOTSTRAP_TOKEN"]["valueFrom"]
    )
    deployment = find(objects, "Deployment", f"{FULL}-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_outposts_run_the_operators_image(render: Render) -> None:
    values = {"image": {"repository": "registry.example/tessera", "tag": "1.2.3"}}
    objects = render(values)
    env = _env(pod_specs(objects)[f"{FULL}-operator"], "operator")
    operator = _container(pod_specs(objects)[f"{FULL}-operator"], "operator")
    assert env["TESSERA_OUTPOST_IMAGE"]["value"] == operator["image"]
    assert operator["image"] == "registry.example/tessera:1.2.3"


def test_the_operator_can_present_a_token_of_its_own(render: Render) -> None:
    values = {"operator": {"tokenSecret": {"name": "operator-token", "key": "key"}}}
    objects = render(values)
    env = _env(pod_specs(objects)[f"{FULL}-operator"], "operator")
    assert env["AUTHENTIK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "operator-token", "key": "key"}
    }
    server_env = _env(pod_specs(objects)[f"{FULL}-server"], "server")
    assert server_env["AUTHENTIK_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == (
        f"{FULL}-secrets"
    )


def test_the_operator_gets_the_public_url_when_an_ingress_exists(render: Render) -> None:
    env = _env(pod_specs(render(external_values()))[f"{FULL}-operator"], "operator")
    assert env["AUTHENTIK_HOST_BROWSER"]["value"] == "https://sso.example.com"


def _rules(role: Rendered) -> list[tuple[str, str, str]]:
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def _assert_least_privilege(granted: list[tuple[str, str, str]]) -> None:
    assert not [g for g in granted if "*" in g]
    secrets = {verb for group, resource, verb in granted if resource == "secrets"}
    # get/list/watch: a clientSecretRef is read and watched; create/update/patch: credentials.
    assert secrets == {"get", "list", "watch", "create", "update", "patch"}  # never delete
    assert {r for g, r, _ in granted if g == ""} == {"secrets", "events", "services", "configmaps"}
    # A SAMLProvider's metadata ConfigMap is written, an SP's metadata ConfigMap read and watched.
    configmaps = {verb for group, resource, verb in granted if resource == "configmaps"}
    assert configmaps == {"get", "list", "watch", "create", "update", "patch"}  # never delete
    tessera = {(r, v) for g, r, v in granted if g == "tessera.dev"}
    own = ("oauth2providers", "applications", "proxyproviders", "outposts", "samlproviders")
    for kind in (*own, "ldapproviders"):
        assert {(kind, "watch"), (f"{kind}/status", "patch"), (f"{kind}/finalizers", "update")} <= (
            tessera
        )
    assert not [rv for rv in tessera if rv[1] in ("create", "delete")]
    # What runs an Outpost: read and written one by one, never listed or watched.
    workload = {
        ("", "services"),
        ("apps", "deployments"),
        ("networking.k8s.io", "ingresses"),
        ("traefik.io", "middlewares"),
        ("traefik.containo.us", "middlewares"),
        ("monitoring.coreos.com", "servicemonitors"),
    }
    for group, resource in workload:
        verbs = {v for g, r, v in granted if (g, r) == (group, resource)}
        assert verbs == {"get", "create", "update", "patch", "delete"}, (group, resource)
    kinds = {(g, r) for g, r, _ in granted if g not in ("tessera.dev", "apiextensions.k8s.io")}
    assert kinds == workload | {
        ("", "secrets"),
        ("", "configmaps"),
        ("", "events"),
        ("events.k8s.io", "events"),
    }


def test_operator_rbac_is_least_privilege(render: Render) -> None:
    objects = render({})
    granted = _rules(find(objects, "ClusterRole", f"{FULL}-operator"))
    _assert_least_privilege([g for g in granted if g[0] != "apiextensions.k8s.io"])
    assert {(r, v) for g, r, v in granted if g == "apiextensions.k8s.io"} == {
        ("customresourcedefinitions", "get"),
        ("customresourcedefinitions", "list"),
        ("customresourcedefinitions", "watch"),
    }
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"{FULL}-operator",
    }
    others = [o for o in objects if o["metadata"]["name"] != HOOK]
    assert not [o for o in others if o["kind"] in ("Role", "RoleBinding")]


@pytest.mark.parametrize("kube", [OLDEST_KUBE, NEWEST_KUBE])
def test_watched_namespaces_get_roles_and_nothing_cluster_wide(render: Render, kube: str) -> None:
    objects = render(external_values())
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    operator = [o for o in objects if o["metadata"]["name"] != HOOK]
    roles = [o for o in operator if o["kind"] == "Role"]
    bindings = [o for o in operator if o["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["grafana", "team-a"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["grafana", "team-a"]
    for role in roles:
        kubernetes_validate.validate(role, kube, strict=True)
        _assert_least_privilege(_rules(role))
    for b in bindings:
        kubernetes_validate.validate(b, kube, strict=True)
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{FULL}-operator",
        }
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{FULL}-operator", "namespace": NAMESPACE}
        ]
    op = _container(pod_specs(objects)[f"{FULL}-operator"], "operator")
    assert op["args"] == [
        "operator",
        "--concurrency=16",
        "--namespace=grafana",
        "--namespace=team-a",
    ]


def test_the_service_monitor_scrapes_every_metrics_port(render: Render) -> None:
    objects = render(external_values())
    monitor = find(objects, "ServiceMonitor", FULL)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        o
        for o in objects
        if o["kind"] == "Service" and selector.items() <= o["metadata"]["labels"].items()
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == [
        f"{FULL}-operator-metrics",
        f"{FULL}-server",
        f"{FULL}-worker-metrics",
    ]
    (endpoint,) = monitor["spec"]["endpoints"]
    for service in selected:
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert ports[endpoint["port"]]["port"] == 9300
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_notes_point_at_the_initial_setup_flow(
    render_files: Callable[[dict[str, Any]], dict[str, str]],
) -> None:
    notes = render_files({})["tessera/templates/NOTES.txt"]
    assert "http://localhost:9000/if/flow/initial-setup/" in notes
    notes = render_files(external_values())["tessera/templates/NOTES.txt"]
    assert "https://sso.example.com/if/flow/initial-setup/" in notes


BAD_VALUES = {
    "replicas_not_a_number": {"server": {"replicas": "two"}},
    "unknown_key": {"server": {"replica": 2}},
    "workers_zero": {"server": {"workers": 0}},
    "unknown_top_level_key": {"postgres": {"enabled": False}},
    "bad_pull_policy": {"image": {"pullPolicy": "Sometimes"}},
    "bad_log_level": {"logLevel": "verbose"},
    "namespace_glob": {"operator": {"watchNamespaces": ["team-*"]}},
    "external_postgresql_without_host": {"postgresql": {"enabled": False}},
    "port_out_of_range": {"service": {"port": 70000}},
    "bad_quantity": {"server": {"resources": {"limits": {"memory": "lots"}}}},
    "ingress_host_with_scheme": {"ingress": {"enabled": True, "host": "https://sso.example"}},
    "health_path_without_slash": {"operator": {"healthPath": "healthz"}},
    "operator_token_secret_bad_name": {"operator": {"tokenSecret": {"name": "My_Token"}}},
    "operator_token_secret_unknown_key": {"operator": {"tokenSecret": {"secret": "x"}}},
    "operator_concurrency_zero": {"operator": {"concurrency": 0}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_the_values_schema_refuses_bad_values(render: Render, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_several_server_replicas_without_redis_share_postgresql(render: Render) -> None:
    """Without Redis the core keeps its cache and bus in PostgreSQL, which the chart always
    configures, so replicas > 1 need nothing more."""
    for values in (
        {"server": {"replicas": 3}, "redis": {"enabled": False}},
        {**external_values(), "server": {"replicas": 3}, "externalRedis": {"host": ""}},
    ):
        objects = render(values)
        assert not [o for o in objects if o["metadata"]["name"].endswith("-redis")]
        server = find(objects, "Deployment", f"{FULL}-server")
        assert server["spec"]["replicas"] == 3
        env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "AUTHENTIK_REDIS__HOST" not in env
        assert env["AUTHENTIK_POSTGRESQL__HOST"]["value"]
    assert render({"server": {"replicas": 2}})  # with the bundled Redis


def test_server_workers_reach_the_core_as_authentik_web_workers(render: Render) -> None:
    for values, expected in (({}, "1"), ({"server": {"workers": 2}}, "2")):
        server = find(render(values), "Deployment", f"{FULL}-server")
        env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["AUTHENTIK_WEB__WORKERS"]["value"] == expected


def test_the_core_gets_the_public_url_from_the_ingress(render: Render) -> None:
    """Passkeys need the relying party (the browser's origin), links in mail and issuers too."""
    specs = pod_specs(render(external_values()))
    for name, container in ((f"{FULL}-server", "server"), (f"{FULL}-worker", "worker")):
        env = _env(specs[name], container)
        assert env["AUTHENTIK_WEB__PUBLIC_URL"]["value"] == "https://sso.example.com", name
    plain = {**external_values(), "ingress": {**external_values()["ingress"], "tls": []}}
    server = _env(pod_specs(render(plain))[f"{FULL}-server"], "server")
    assert server["AUTHENTIK_WEB__PUBLIC_URL"]["value"] == "http://sso.example.com"
    # No ingress: no address to guess; the core's own default stands.
    assert "AUTHENTIK_WEB__PUBLIC_URL" not in _env(
        pod_specs(render({}))[f"{FULL}-server"], "server"
    )


def test_servers_leave_scheduled_tasks_to_the_worker_deployment(render: Render) -> None:
    server = _env(pod_specs(render({}))[f"{FULL}-server"], "server")
    assert server["AUTHENTIK_WORKER__EMBEDDED"]["value"] == "false"
    alone = pod_specs(render({"worker": {"enabled": False}}))
    assert f"{FULL}-worker" not in alone
    assert "AUTHENTIK_WORKER__EMBEDDED" not in _env(alone[f"{FULL}-server"], "server")


def test_the_chart_works_as_a_subchart_with_global_values(render: Render) -> None:
    """A parent chart passes `global` to every subchart; the strict values schema accepts it."""
    objects = render({"global": {"imageRegistry": "registry.example.com", "storageClass": "x"}})
    assert find(objects, "Deployment", f"{FULL}-server")


def test_mail_settings_reach_the_server_and_the_worker_that_sends(render: Render) -> None:
    """Mail is queued and sent by the worker (or the server without one): both get the SMTP
    settings, the password only through a Secret."""
    values = {
        "email": {
            "host": "smtp.home.arpa",
            "port": 587,
            "username": "idp",
            "passwordSecret": {"name": "smtp", "key": "pw"},
            "useTLS": True,
            "from": "Tessera <idp@home.arpa>",
        }
    }
    specs = pod_specs(render(values))
    for name, container in ((f"{FULL}-server", "server"), (f"{FULL}-worker", "worker")):
        env = _env(specs[name], container)
        assert env["AUTHENTIK_EMAIL__HOST"]["value"] == "smtp.home.arpa", name
        assert env["AUTHENTIK_EMAIL__PORT"]["value"] == "587"
        assert env["AUTHENTIK_EMAIL__USE_TLS"]["value"] == "true"
        assert env["AUTHENTIK_EMAIL__FROM"]["value"] == "Tessera <idp@home.arpa>"
        assert env["AUTHENTIK_EMAIL__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "smtp",
            "key": "pw",
        }
    # No host: nothing is set, the core's defaults stand.
    server = _env(pod_specs(render({}))[f"{FULL}-server"], "server")
    assert not [name for name in server if name.startswith("AUTHENTIK_EMAIL__")]
