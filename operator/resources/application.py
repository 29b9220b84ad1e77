"""The `Application` custom resource: a core application, its provider and who may use it.

The operator turns a spec into `/api/v3/core/applications/` fields, links the provider named by
`providerRef` (same namespace) and binds the core groups of `accessGroups` to the application.
The CRD schema is generated from these models (`tessera.operator.crds`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from tessera.core.wire import common as wire
from tessera.core.wire import core as wire_core
from tessera.operator.resources import common
from tessera.operator.resources.common import Rule

ProviderKind = Literal["OAuth2Provider", "ProxyProvider", "SAMLProvider", "LDAPProvider"]
LAUNCH_URL = r"(?i:https?://\S+|blank://blank)"  # the whole URL

_IMMUTABLE_SLUG = Rule(
    rule="self == oldSelf",
    message="slug is immutable: it is part of the issuer and of every URL of the application",
)


def _launch_url(value: str) -> str:
    if not re.fullmatch(LAUNCH_URL, value):
        raise ValueError("launchURL must be an http(s) URL")
    return value


LaunchURL = Annotated[
    str,
    Field(min_length=1, max_length=2000, pattern=f"^{LAUNCH_URL}$"),
    AfterValidator(_launch_url),
]
GroupName = Annotated[str, Field(min_length=1, max_length=200)]


class ProviderRef(common.Model):
    """The provider resource of this application, in the same namespace."""

    kind: ProviderKind = "OAuth2Provider"
    """Kind of the provider resource."""
    name: common.KubeName
    """Name of the provider resource."""


class ApplicationSpec(common.Model):
    """The desired core application."""

    name: wire.Name
    """Display name in the user portal."""
    slug: Annotated[
        wire.Slug,
        Field(
            description="URL identifier (issuer <core>/application/o/<slug>/); immutable.",
            json_schema_extra=common.validations(_IMMUTABLE_SLUG),
        ),
    ]
    provider_ref: ProviderRef
    """The provider resource serving this application."""
    launch_url: Annotated[LaunchURL | None, Field(alias="launchURL")] = None
    """Where the user portal sends users to open the application."""
    group: wire.ShortText | None = None
    """Group heading of the application in the user portal."""
    description: wire.LongText | None = None
    """Description shown in the user portal."""
    publisher: wire.ShortText | None = None
    """Publisher shown in the user portal."""
    policy_engine_mode: wire_core.PolicyEngineMode = "any"
    """any: one passing binding grants access; all: every binding must pass."""
    access_groups: Annotated[list[GroupName], Field(max_length=64), common.SET, common.UNIQUE] = []
    """Names of core groups whose members may use the application; empty means everyone."""
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core application with the resource; Orphan: keep it, unmanaged."""


class ApplicationStatus(common.Status):
    """The core application this resource manages."""

    application_uid: Annotated[str | None, Field(alias="applicationUID", max_length=64)] = None
    """Primary key (UUID) of the core application."""


KIND = common.Kind(
    kind="Application",
    plural="applications",
    short_names=("tsapp",),
    spec=ApplicationSpec,
    status=ApplicationStatus,
    description="An application in Tessera's core: portal entry, provider link and access groups.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("Slug", "string", ".spec.slug", "URL identifier"),
        common.Column(
            "Application UID", "string", ".status.applicationUID", "Core application primary key"
        ),
        common.AGE_COLUMN,
    ),
)
