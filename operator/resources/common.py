"""Pieces every tessera.dev custom resource shares: names, conditions, references, CEL rules.

Used by the kind modules beside this one (`oauth2provider`, `application`), by the CRD generator
(`tessera.operator.crds`) and by the operator runtime (status conditions, the `managed` marker).
Imports only pydantic and the core's wire building blocks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "tessera.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tessera"
READY = "Ready"
"""The condition type every resource reports."""


class Reason(enum.StrEnum):
    """Reasons of the `Ready` condition, shared by the operator runtime and the documentation."""

    RECONCILED = "Reconciled"
    """The core objects match the spec (`Ready=True`)."""
    CORE_UNAVAILABLE = "CoreUnavailable"
    """The core did not answer, or answered 5xx: retried with backoff (`Ready=False`)."""
    INVALID_SPEC = "InvalidSpec"
    """The core or the operator refused the spec; the message names the field (`Ready=False`)."""
    CONFLICT = "Conflict"
    """A core object with the same name or slug belongs to someone else (`Ready=False`)."""
    PROVIDER_NOT_READY = "ProviderNotReady"
    """An Application's providerRef, or one of an Outpost's providerRefs, names a provider
    resource that is missing or has no core provider yet (`Ready=False`)."""
    DELETING = "Deleting"
    """The resource is being deleted and its core objects removed or released (`Ready=False`)."""


DeletionPolicy = Literal["Delete", "Orphan"]

# Kubernetes object names (DNS-1123 subdomain) and Secret data keys, as the API server checks them.
KubeName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
# metav1.Condition's bounds (k8s.io/apimachinery/pkg/apis/meta/v1 types.go).
ConditionType = Annotated[
    str,
    Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    ),
]
ConditionReason = Annotated[
    str, Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
]


def _unique(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("items must not repeat")
    return items


# A list of distinct strings: `Annotated[list[X], Field(max_length=n), SET, UNIQUE]`.
SET = Field(json_schema_extra={"x-kubernetes-list-type": "set"})
UNIQUE = AfterValidator(_unique)
Generation = Annotated[int, Field(ge=0, json_schema_extra={"format": "int64"})]


@dataclasses.dataclass(frozen=True)
class Rule:
    """A CEL rule of the CRD (`x-kubernetes-validations`); the model enforces the same in Python.

    Rules use standard CEL only (no Kubernetes extension libraries), so that the tests can
    evaluate them with cel-python. A rule mentioning `oldSelf` is a transition rule: the API server
    evaluates it on updates only.
    """

    rule: str
    message: str
    field_path: str = ""

    def as_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def cel_string(text: str) -> str:
    """`text` as a CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def validations(*rules: Rule) -> dict[str, Any]:
    """The `json_schema_extra` that puts `rules` on a schema node."""
    return {"x-kubernetes-validations": [rule.as_schema() for rule in rules]}


class Model(BaseModel):
    """Base of the spec and status models: camelCase on the wire, unknown fields refused.

    Field docstrings become the CRD's descriptions (`kubectl explain`).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_kube(self) -> dict[str, Any]:
        """The JSON-able value with the Kubernetes field names, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretRef(Model):
    """A Secret in the resource's namespace."""

    name: KubeName
    """Name of the Secret."""


class SecretKeyRef(Model):
    """A key of a Secret in the resource's namespace."""

    name: KubeName
    """Name of the Secret."""
    key: SecretKey = "client_secret"
    """Key in the Secret's data."""


class Condition(Model):
    """A condition in the shape of Kubernetes' metav1.Condition."""

    type: ConditionType
    """Type of condition, CamelCase; every resource reports `Ready`."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition."""
    observed_generation: Generation | None = None
    """The .metadata.generation the condition was set for."""
    last_transition_time: dt.datetime
    """When the status last changed."""
    reason: ConditionReason
    """Machine-readable CamelCase reason of the last transition (see `Reason`)."""
    message: Annotated[str, Field(max_length=32768)]
    """Human-readable details; names the offending field for InvalidSpec."""


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class Status(Model):
    """What the operator reports; never holds a secret."""

    observed_generation: Generation | None = None
    """The .metadata.generation the operator last reconciled."""
    conditions: Conditions | None = None
    """Current conditions; `Ready` tells whether the core objects match the spec."""


@dataclasses.dataclass(frozen=True)
class Column:
    """An additional printer column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0


READY_COLUMNS = (
    Column("Ready", "string", f'.status.conditions[?(@.type=="{READY}")].status', "Ready status"),
    Column(
        "Reason",
        "string",
        f'.status.conditions[?(@.type=="{READY}")].reason',
        "Reason of the Ready status",
    ),
)
AGE_COLUMN = Column("Age", "date", ".metadata.creationTimestamp", "Time since creation")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A custom resource kind: its names, its models and how `kubectl get` shows it."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[Model]
    status: type[Status]
    description: str
    columns: tuple[Column, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def managed_value(kind: str, namespace: str, name: str, uid: str) -> str:
    """The `managed` marker of one resource's core objects: `tessera.dev/<Kind>/<ns>/<name>/<uid>`.

    Writes to those objects carry it in the `X-Tessera-Managed-By` header."""
    return f"{GROUP}/{kind}/{namespace}/{name}/{uid}"
