"""The Kubernetes objects that run one `Outpost`: pure functions from a `Plan` to manifests.

`tessera.operator.handlers.outposts` makes the plan (the resource, the core outpost, its token,
the providers' hosts, which optional kinds the cluster serves), calls `build`, applies each
component's JSON patches (`builders.patches`) and writes the result. Nothing here does I/O, so
the tests render and validate every object directly.

Every object is named after the resource (`names`), labelled `app.kubernetes.io/*`, in the
resource's namespace and owned by it (controller owner reference: the garbage collector removes
it with the resource). The Deployment runs `tessera outpost <type>` as authentik's outpost
controller runs its images: settings from the token Secret, non-root, read-only root filesystem
(an emptyDir for the state directory and one for /tmp), no capabilities, no privilege
escalation, seccomp RuntimeDefault, probes on the outpost's ping endpoint (proxy) or LDAP port.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from tessera.operator.resources import outpost as model

Manifest = dict[str, Any]

PREFIX = "tessera-outpost-"
MAX_BASE = 55  # a Service name is a DNS-1035 label (63); `-metrics` follows the base
APP_NAME = "tessera-outpost"
MANAGED_BY = "tessera-operator"
CONTAINER = "outpost"
UID, GID = 1000, 1000  # the image's `tessera` user
STATE_DIR = "/var/lib/tessera-outpost"
PING = "/outpost.goauthentik.io/ping"
TRAEFIK_AUTH = "/outpost.goauthentik.io/auth/traefik"
OUTPOST_PATH = "/outpost.goauthentik.io"
DIGEST_ANNOTATION = "tessera.dev/settings-digest"
TOKEN_PK_ANNOTATION = "tessera.dev/token-pk"  # noqa: S105 - an annotation key
# The identity headers a forward-auth check answers with (DESIGN.md §5), which Traefik copies
# onto the request to the application.
HEADERS = (
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-entitlements",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
    "X-authentik-jwt",
    "X-authentik-meta-jwks",
    "X-authentik-meta-outpost",
    "X-authentik-meta-provider",
    "X-authentik-meta-app",
    "X-authentik-meta-version",
)
# (name, container port) of each type's listeners; metrics on every type (authentik's names and
# numbers: an unprivileged process listens above 1024).
PORTS = {
    "proxy": (("http", 9000), ("https", 9443)),
    "ldap": (("ldap", 3389), ("ldaps", 6636)),
}
# The Service's port of each listener: LDAP clients expect the well-known 389 and 636.
SERVICE_PORTS = {"http": 9000, "https": 9443, "ldap": 389, "ldaps": 636}
METRICS_PORT = ("http-metrics", 9300)
LISTEN_ENV = {  # the outpost's listen settings, one per port name
    "http": "AUTHENTIK_LISTEN__HTTP",
    "https": "AUTHENTIK_LISTEN__HTTPS",
    "ldap": "AUTHENTIK_LISTEN__LDAP",
    "ldaps": "AUTHENTIK_LISTEN__LDAPS",
    "http-metrics": "AUTHENTIK_LISTEN__METRICS",
}
# Secret key -> environment variable of the outpost (authentik's keys).
SECRET_ENV = (
    ("authentik_host", "AUTHENTIK_HOST"),
    ("authentik_host_browser", "AUTHENTIK_HOST_BROWSER"),
    ("authentik_host_insecure", "AUTHENTIK_INSECURE"),
    ("token", "AUTHENTIK_TOKEN"),
)


@dataclasses.dataclass(frozen=True)
class Host:
    """A provider's external host, as the Ingress routes it."""

    url: str
    mode: str

    @property
    def name(self) -> str:
        return re.sub(r"^[a-z]+://", "", self.url).split("/")[0].split(":")[0].lower()

    @property
    def https(self) -> bool:
        return self.url.lower().startswith("https://")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything the objects of one Outpost depend on."""

    owner: Mapping[str, Any]  # the Outpost resource (apiVersion, kind, metadata)
    spec: model.OutpostSpec
    image: str
    core_url: str  # AUTHENTIK_HOST: where the outpost reaches the core
    browser_url: str  # AUTHENTIK_HOST_BROWSER: where browsers reach it ("" = core_url)
    token: str = dataclasses.field(repr=False)
    token_pk: str
    outpost_uid: str
    hosts: tuple[Host, ...] = ()
    insecure: bool = False
    middleware_api: str | None = None  # e.g. traefik.io/v1alpha1, when the cluster serves it
    service_monitors: bool = False  # the cluster serves monitoring.coreos.com/v1 ServiceMonitor

    @property
    def name(self) -> str:
        return str(self.owner["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.owner["metadata"]["namespace"])


def base_name(name: str) -> str:
    """The name of the Deployment, Service, Secret, Ingress and Middleware of Outpost `name`."""
    clean = name.lower().replace(".", "-")
    full = PREFIX + clean
    if len(full) <= MAX_BASE:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{full[: MAX_BASE - 9]}-{digest}"


def metrics_name(name: str) -> str:
    return base_name(name) + "-metrics"


def selector(plan: Plan) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": base_name(plan.name)}


def labels(plan: Plan) -> dict[str, str]:
    return {
        **selector(plan),
        "app.kubernetes.io/component": plan.spec.type,
        "app.kubernetes.io/part-of": "tessera",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _object(plan: Plan, api_version: str, kind: str, name: str, **extra: Any) -> Manifest:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": plan.namespace,
        "labels": labels(plan),
        "ownerReferences": [owner_reference(plan.owner)],
    }
    meta.update(extra.pop("metadata", {}))
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


# The token Secret -----------------------------------------------------------------------------


def secret_data(plan: Plan) -> dict[str, str]:
    """The Secret's values (authentik's keys), as text."""
    return {
        "authentik_host": plan.core_url,
        "authentik_host_browser": plan.browser_url,
        "authentik_host_insecure": "true" if plan.insecure else "false",
        "token": plan.token,
    }


def settings_digest(plan: Plan) -> str:
    """A digest of the Secret's values: a change rolls the pods, which read them at start."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(secret_data(plan).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def secret(plan: Plan) -> Manifest:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(secret_data(plan).items())}
    annotations = {TOKEN_PK_ANNOTATION: plan.token_pk}
    return _object(
        plan,
        "v1",
        "Secret",
        base_name(plan.name),
        metadata={"annotations": annotations},
        type="Opaque",
        data=data,
    )


# The Deployment -------------------------------------------------------------------------------


def _ports(plan: Plan) -> list[tuple[str, int]]:
    return [*PORTS[plan.spec.type], METRICS_PORT]


def _env(plan: Plan) -> list[dict[str, Any]]:
    secret_name = base_name(plan.name)
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for key, var in SECRET_ENV
    ]
    env += [{"name": LISTEN_ENV[name], "value": f"0.0.0.0:{port}"} for name, port in _ports(plan)]
    env.append({"name": "AUTHENTIK_STATE_DIR", "value": STATE_DIR})
    return env


def _probes(plan: Plan) -> dict[str, Any]:
    if plan.spec.type == "proxy":
        check: dict[str, Any] = {"httpGet": {"path": PING, "port": "http"}}
    else:
        check = {"tcpSocket": {"port": "ldap"}}
    return {
        "startupProbe": {**check, "periodSeconds": 2, "failureThreshold": 60, "timeoutSeconds": 3},
        "livenessProbe": {**check, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 3},
        "readinessProbe": {
            **check,
            "periodSeconds": 5,
            "failureThreshold": 2,
            "timeoutSeconds": 3,
        },
    }


def _resources(plan: Plan) -> dict[str, Any]:
    return plan.spec.resources.to_kube()


def container(plan: Plan) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "image": plan.image,
        "imagePullPolicy": plan.spec.image_pull_policy,
        "command": ["tessera"],
        "args": ["outpost", plan.spec.type],
        "env": _env(plan),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in _ports(plan)
        ],
        **_probes(plan),
        "resources": _resources(plan),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": GID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }


def deployment(plan: Plan) -> Manifest:
    pod_labels = labels(plan)
    template = {
        "metadata": {
            "labels": pod_labels,
            "annotations": {DIGEST_ANNOTATION: settings_digest(plan)},
        },
        "spec": {
            "automountServiceAccountToken": False,  # an outpost never calls the Kubernetes API
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": GID,
                "fsGroup": GID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container(plan)],
            "volumes": [
                {"name": "state", "emptyDir": {"sizeLimit": "64Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }
    return _object(
        plan,
        "apps/v1",
        "Deployment",
        base_name(plan.name),
        spec={
            "replicas": plan.spec.replicas,
            "selector": {"matchLabels": selector(plan)},
            "template": template,
        },
    )


# Services and the ServiceMonitor --------------------------------------------------------------


def service(plan: Plan) -> Manifest:
    ports = [
        {"name": name, "port": SERVICE_PORTS[name], "targetPort": name, "protocol": "TCP"}
        for name, _ in PORTS[plan.spec.type]
    ]
    return _object(
        plan,
        "v1",
        "Service",
        base_name(plan.name),
        spec={"type": plan.spec.service_type, "selector": selector(plan), "ports": ports},
    )


def metrics_labels(plan: Plan) -> dict[str, str]:
    return {**labels(plan), "tessera.dev/metrics": "true"}


def metrics_service(plan: Plan) -> Manifest:
    name, port = METRICS_PORT
    return _object(
        plan,
        "v1",
        "Service",
        metrics_name(plan.name),
        metadata={"labels": metrics_labels(plan)},
        spec={
            "type": "ClusterIP",
            "selector": selector(plan),
            "ports": [{"name": name, "port": port, "targetPort": name, "protocol": "TCP"}],
        },
    )


def service_monitor(plan: Plan) -> Manifest:
    match = {**selector(plan), "tessera.dev/metrics": "true"}
    return _object(
        plan,
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        base_name(plan.name),
        spec={
            "selector": {"matchLabels": match},
            "endpoints": [{"port": METRICS_PORT[0], "path": "/metrics", "interval": "30s"}],
        },
    )


# Routes of a proxy outpost --------------------------------------------------------------------


def ingress_rules(plan: Plan) -> list[dict[str, Any]]:
    """One rule per host: `/` when a provider proxies it, else only the outpost's own paths."""
    paths: dict[str, str] = {}
    for host in plan.hosts:
        wanted = "/" if host.mode == "proxy" else OUTPOST_PATH
        if paths.get(host.name) != "/":
            paths[host.name] = wanted
    backend = {"service": {"name": base_name(plan.name), "port": {"name": "http"}}}
    return [
        {
            "host": name,
            "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]},
        }
        for name, path in sorted(paths.items())
    ]


def ingress(plan: Plan) -> Manifest:
    settings = plan.spec.ingress or model.Ingress()
    spec: dict[str, Any] = {"rules": ingress_rules(plan)}
    if settings.class_name:
        spec["ingressClassName"] = settings.class_name
    tls_hosts = sorted({h.name for h in plan.hosts if h.https})
    if settings.tls_secret_name and tls_hosts:
        spec["tls"] = [{"hosts": tls_hosts, "secretName": settings.tls_secret_name}]
    extra: dict[str, Any] = {}
    if settings.annotations:
        extra["annotations"] = dict(settings.annotations)
    return _object(
        plan, "networking.k8s.io/v1", "Ingress", base_name(plan.name), metadata=extra, spec=spec
    )


def auth_address(plan: Plan) -> str:
    """Traefik's forwardAuth address: the outpost's Service, in-cluster."""
    port = SERVICE_PORTS["http"]
    return f"http://{base_name(plan.name)}.{plan.namespace}.svc:{port}{TRAEFIK_AUTH}"


def middleware(plan: Plan) -> Manifest:
    assert plan.middleware_api is not None
    return _object(
        plan,
        plan.middleware_api,
        "Middleware",
        base_name(plan.name),
        spec={
            "forwardAuth": {
                "address": auth_address(plan),
                "trustForwardHeader": True,
                "authResponseHeaders": list(HEADERS),
            }
        },
    )


# All of them ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Built:
    """The objects to write, and the components left out with the reason."""

    objects: dict[str, Manifest]  # component -> manifest, in the order to write them
    skipped: dict[str, str]  # component -> why not


def build(plan: Plan) -> Built:
    """Every object of the plan's Outpost, before JSON patches."""
    objects: dict[str, Manifest] = {}
    skipped: dict[str, str] = {}
    candidates: list[tuple[str, Manifest | None, str]] = [
        ("secret", secret(plan), ""),
        ("deployment", deployment(plan), ""),
        ("service", service(plan), ""),
        ("metricsService", metrics_service(plan), ""),
        (
            "serviceMonitor",
            service_monitor(plan) if plan.service_monitors else None,
            "the cluster serves no monitoring.coreos.com/v1 ServiceMonitor",
        ),
    ]
    if plan.spec.type == "proxy":
        candidates += [
            (
                "ingress",
                ingress(plan) if plan.hosts else None,
                "no provider with an external host",
            ),
            (
                "middleware",
                middleware(plan) if plan.middleware_api else None,
                "the cluster serves no Traefik Middleware (traefik.io/v1alpha1)",
            ),
        ]
    disabled = set(plan.spec.disabled_components)
    for component, manifest, why in candidates:
        if component in disabled:
            skipped[component] = "disabled in spec.disabledComponents"
        elif manifest is None:
            skipped[component] = why
        else:
            objects[component] = manifest
    return Built(objects, skipped)
