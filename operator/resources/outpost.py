"""The `Outpost` custom resource: a core outpost and the workload that runs it in the cluster.

The operator turns a spec into a core outpost (`/api/v3/outposts/instances/`) serving the
providers named by `providerRefs`, writes the outpost's API token into a Secret, and runs
`tessera outpost <type>` as a Deployment with its Services (and, where the cluster has the
kinds, a ServiceMonitor, an Ingress and a Traefik Middleware), all owned by the resource
(`tessera.operator.builders.outpost`). `jsonPatches` adjusts each generated object with RFC 6902
operations, as authentik's `kubernetes_json_patches` does. The CRD schema is generated from
these models (`tessera.operator.crds`); the CEL rules are checked again here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tessera.operator.resources import common
from tessera.operator.resources.common import Rule
from tessera.operator.resources.oauth2provider import Duration

OutpostType = Literal["proxy", "ldap"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
ProviderKind = Literal["ProxyProvider", "LDAPProvider"]
# The provider kind each outpost type serves.
SERVES = {"proxy": "ProxyProvider", "ldap": "LDAPProvider"}
PatchOp = Literal["add", "remove", "replace", "move", "copy", "test"]
# The generated objects, as `jsonPatches` and `disabledComponents` name them.
Component = Literal[
    "secret", "deployment", "service", "metricsService", "serviceMonitor", "ingress", "middleware"
]
# SECURITY: what a patch may not touch: the object's identity and owner (a patch could otherwise
# move it to another namespace, rename it onto someone else's object, or detach it from its owner).
PROTECTED_PATHS = (
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/ownerReferences",
)
ANY_VALUE: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
POINTER = r"^(/([^/~]|~[01])*)+$"
# A resource quantity (Kubernetes' `resource.Quantity`), e.g. 100m, 128Mi, 1.5, 2e3.
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"

_TYPE_IMMUTABLE = Rule(
    rule="self == oldSelf",
    message="type is immutable: create another Outpost for another type",
)
_PROXY_PROVIDERS_FOR_PROXY = Rule(
    rule="self.type == 'proxy' || self.providerRefs.all(r, r.kind != 'ProxyProvider')",
    message="only a proxy outpost serves ProxyProviders",
    field_path=".providerRefs",
)
_LDAP_PROVIDERS_FOR_LDAP = Rule(
    rule="self.type == 'ldap' || self.providerRefs.all(r, r.kind != 'LDAPProvider')",
    message="only an ldap outpost serves LDAPProviders",
    field_path=".providerRefs",
)
_REFS_UNIQUE = Rule(
    rule="self.all(r, self.exists_one(s, s.kind == r.kind && s.name == r.name))",
    message="a provider is named once",
)
_PROTECTED = " || ".join(f"p.startsWith({common.cel_string(p)})" for p in PROTECTED_PATHS)
_PATH_ALLOWED = Rule(
    rule=f"![self.path].exists(p, {_PROTECTED}) && "
    f"!(self.op == 'move' && has(self.from) && [self.from].exists(p, {_PROTECTED}))",
    message="a patch may not change apiVersion, kind, metadata.name, metadata.namespace or "
    "metadata.ownerReferences",
    field_path=".path",
)
_FROM_FOR_MOVE = Rule(
    rule="!(self.op == 'move' || self.op == 'copy') || has(self.from)",
    message="move and copy need from",
)


class ProviderRef(common.Model):
    """A provider resource this outpost serves, in the same namespace."""

    kind: ProviderKind = "ProxyProvider"
    """Kind of the provider resource: ProxyProvider (proxy outposts) or LDAPProvider (ldap)."""
    name: common.KubeName
    """Name of the provider resource."""


class JsonPatch(common.Model):
    """One RFC 6902 operation on a generated object."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_PATH_ALLOWED, _FROM_FOR_MOVE)
    }

    op: PatchOp
    """The operation."""
    path: Annotated[str, Field(min_length=1, max_length=1000, pattern=POINTER)]
    """JSON pointer to the target location, e.g. /spec/template/spec/nodeSelector."""
    from_: Annotated[
        str | None, Field(alias="from", min_length=1, max_length=1000, pattern=POINTER)
    ] = None
    """Source location of move and copy."""
    value: Annotated[Any, Field(json_schema_extra=ANY_VALUE)] = None
    """The value of add, replace and test (any JSON value)."""

    @model_validator(mode="after")
    def _rules(self) -> JsonPatch:
        touched = [self.path, self.from_ or ""] if self.op == "move" else [self.path]
        if any(path.startswith(PROTECTED_PATHS) for path in touched):
            raise ValueError(_PATH_ALLOWED.message)
        if self.op in ("move", "copy") and self.from_ is None:
            raise ValueError(_FROM_FOR_MOVE.message)
        return self

    def operation(self) -> dict[str, Any]:
        """The operation as RFC 6902 writes it."""
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.from_ is not None:
            out["from"] = self.from_
        if self.op in ("add", "replace", "test"):
            out["value"] = self.value
        return out


Patches = Annotated[list[JsonPatch], Field(max_length=64)]


class JsonPatches(common.Model):
    """RFC 6902 patches applied to each generated object before it is written."""

    secret: Patches | None = None
    """Patches of the token Secret."""
    deployment: Patches | None = None
    """Patches of the Deployment."""
    service: Patches | None = None
    """Patches of the Service."""
    metrics_service: Patches | None = None
    """Patches of the metrics Service."""
    service_monitor: Patches | None = None
    """Patches of the ServiceMonitor."""
    ingress: Patches | None = None
    """Patches of the Ingress."""
    middleware: Patches | None = None
    """Patches of the Traefik Middleware."""

    def of(self, component: str) -> list[JsonPatch]:
        return list(getattr(self, _ATTRIBUTES[component]) or [])


_ATTRIBUTES = {
    "secret": "secret",
    "deployment": "deployment",
    "service": "service",
    "metricsService": "metrics_service",
    "serviceMonitor": "service_monitor",
    "ingress": "ingress",
    "middleware": "middleware",
}

Quantity = Annotated[str, Field(min_length=1, max_length=64, pattern=QUANTITY)]


class Quantities(common.Model):
    """CPU and memory amounts."""

    cpu: Quantity | None = None
    """CPU, e.g. 100m."""
    memory: Quantity | None = None
    """Memory, e.g. 128Mi."""


class Resources(common.Model):
    """Compute resources of the outpost's container."""

    requests: Quantities | None = None
    """What the scheduler reserves."""
    limits: Quantities | None = None
    """What the container may use at most."""


DEFAULT_RESOURCES = Resources(
    requests=Quantities(cpu="50m", memory="96Mi"), limits=Quantities(cpu="1", memory="256Mi")
)


class Ingress(common.Model):
    """The Ingress of a proxy outpost (one rule per provider host)."""

    class_name: Annotated[str, Field(max_length=253)] | None = None
    """The IngressClass; absent means the cluster's default."""
    annotations: Annotated[
        dict[str, Annotated[str, Field(max_length=4096)]],
        Field(max_length=64),
    ] = {}
    """Annotations of the Ingress (for the ingress controller)."""
    tls_secret_name: common.KubeName | None = None
    """Secret with the certificate for the https hosts; absent means no TLS section."""


class OutpostSpec(common.Model):
    """The desired outpost and its workload."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(
            _PROXY_PROVIDERS_FOR_PROXY, _LDAP_PROVIDERS_FOR_LDAP
        )
    }

    type: Annotated[
        OutpostType,
        Field(
            description="proxy (forward auth and reverse proxy) or ldap; immutable.",
            json_schema_extra=common.validations(_TYPE_IMMUTABLE),
        ),
    ]
    provider_refs: Annotated[
        list[ProviderRef],
        Field(max_length=100, json_schema_extra=common.validations(_REFS_UNIQUE)),
    ] = []
    """The provider resources this outpost serves (same namespace): ProxyProviders for a proxy
    outpost, LDAPProviders for an ldap one."""
    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Number of outpost pods."""
    image: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    """Container image; absent means the image the operator was installed with."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image."""
    resources: Resources = DEFAULT_RESOURCES
    """CPU and memory of the outpost's container."""
    service_type: ServiceType = "ClusterIP"
    """Type of the outpost's Service."""
    ingress: Ingress | None = None
    """Settings of a proxy outpost's Ingress."""
    refresh_interval: Duration = "minutes=5"
    """How often the outpost refetches its configuration besides the core's notifications."""
    disabled_components: Annotated[
        list[Component], Field(max_length=7), common.SET, common.UNIQUE
    ] = []
    """Generated objects not to create (e.g. ingress when routing is done elsewhere)."""
    json_patches: JsonPatches | None = None
    """RFC 6902 patches of each generated object."""
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core outpost (and its token) with the resource; Orphan: keep it."""

    @model_validator(mode="after")
    def _rules(self) -> OutpostSpec:
        if self.type != "proxy" and any(r.kind == "ProxyProvider" for r in self.provider_refs):
            raise ValueError(_PROXY_PROVIDERS_FOR_PROXY.message)
        if self.type != "ldap" and any(r.kind == "LDAPProvider" for r in self.provider_refs):
            raise ValueError(_LDAP_PROVIDERS_FOR_LDAP.message)
        names = [(r.kind, r.name) for r in self.provider_refs]
        if len(set(names)) != len(names):
            raise ValueError(_REFS_UNIQUE.message)
        return self

    def patches(self, component: str) -> list[JsonPatch]:
        return self.json_patches.of(component) if self.json_patches else []


class Instance(common.Model):
    """One outpost process connected to the core's control channel."""

    uid: Annotated[str, Field(max_length=64)]
    """Instance id the process chose."""
    hostname: Annotated[str, Field(max_length=253)]
    """Host name (the pod's name)."""
    version: Annotated[str, Field(max_length=64)]
    """Version the process reports."""
    last_seen: Annotated[str, Field(max_length=64)]
    """When the process last said hello."""


class OutpostStatus(common.Status):
    """The core outpost, the generated objects and how many processes run and are connected."""

    outpost_uid: Annotated[str | None, Field(alias="outpostUID", max_length=64)] = None
    """Primary key (UUID) of the core outpost."""
    replicas: Annotated[int, Field(ge=0)] | None = None
    """Pods the Deployment wants."""
    ready_replicas: Annotated[int, Field(ge=0)] | None = None
    """Pods of the Deployment that are ready."""
    connected_instances: Annotated[int, Field(ge=0)] | None = None
    """Outpost processes the core saw on its control channel in the last 15 seconds."""
    instances: Annotated[list[Instance], Field(max_length=100)] | None = None
    """Those processes (at most 100)."""
    components: (
        Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=16)] | None
    ) = None
    """The generated objects, as Kind/name."""
    skipped: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=16)] | None = (
        None
    )
    """Generated objects not written, and why (disabled, or the cluster lacks the kind)."""


KIND = common.Kind(
    kind="Outpost",
    plural="outposts",
    short_names=("tsoutpost",),
    spec=OutpostSpec,
    status=OutpostStatus,
    description="An outpost of Tessera's core and the Deployment, Services and routes running it.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("Type", "string", ".spec.type", "Outpost type"),
        common.Column("Replicas", "integer", ".status.replicas", "Pods wanted"),
        common.Column("Ready Replicas", "integer", ".status.readyReplicas", "Pods ready"),
        common.Column(
            "Connected", "integer", ".status.connectedInstances", "Processes the core sees"
        ),
        common.Column(
            "Outpost UID", "string", ".status.outpostUID", "Core outpost primary key", priority=1
        ),
        common.AGE_COLUMN,
    ),
)
