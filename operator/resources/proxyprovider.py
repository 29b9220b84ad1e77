"""The `ProxyProvider` custom resource: a forward auth or reverse proxy provider in the core.

The operator turns a spec into `/api/v3/providers/proxy/` fields; an `Outpost` of type proxy
names the resource in `providerRefs` to serve it, and an `Application` names it in `providerRef`
to put it in the portal (an outpost serves only providers an application uses). The CRD schema
is generated from these models (`tessera.operator.crds`); the CEL rules are checked again here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tessera.core.wire import common as wire
from tessera.operator.resources import common
from tessera.operator.resources.common import Rule
from tessera.operator.resources.oauth2provider import Duration

Mode = Literal["proxy", "forward_single", "forward_domain"]

# An absolute http(s) URL: scheme, a host without user info, an optional port and path.
HTTP_URL = r"^https?://[^\s/?#@]+(/[^\s#]*)?$"
# A bare domain (what a cookie's Domain attribute takes): labels of letters, digits, hyphens.
DOMAIN = r"^\.?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"

HttpURL = Annotated[str, Field(min_length=1, max_length=2000, pattern=HTTP_URL)]
Attribute = Annotated[str, Field(min_length=1, max_length=200)]


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


PathRegex = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_compiles)]

_INTERNAL_FOR_PROXY = Rule(
    rule="self.mode != 'proxy' || has(self.internalHost)",
    message="internalHost is required in proxy mode: it is where requests are forwarded",
    field_path=".internalHost",
)
_DOMAIN_FOR_DOMAIN_MODE = Rule(
    rule="self.mode != 'forward_domain' || has(self.cookieDomain)",
    message="cookieDomain is required in forward_domain mode: the domain the applications share",
    field_path=".cookieDomain",
)


class BasicAuth(common.Model):
    """Send HTTP Basic credentials to the upstream, read from the user's (or groups') attributes."""

    user_attribute: Attribute
    """Attribute holding the user name sent upstream."""
    password_attribute: Attribute
    """Attribute holding the password sent upstream."""


class ProxyProviderSpec(common.Model):
    """The desired proxy provider."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_INTERNAL_FOR_PROXY, _DOMAIN_FOR_DOMAIN_MODE)
    }

    mode: Mode = "proxy"
    """proxy: the outpost forwards requests to internalHost; forward_single: forward auth for one
    host (Traefik, nginx, Caddy ask the outpost); forward_domain: forward auth for every host
    under cookieDomain with one login."""
    external_host: HttpURL
    """The URL users open (the application's public address); the outpost's Ingress routes its
    host to the outpost."""
    internal_host: HttpURL | None = None
    """Where the outpost forwards requests in proxy mode."""
    internal_host_ssl_validation: bool = True
    """Verify the internal host's TLS certificate (proxy mode)."""
    cookie_domain: Annotated[str, Field(max_length=253, pattern=DOMAIN)] | None = None
    """The domain whose subdomains share one login (forward_domain mode)."""
    skip_path_regex: Annotated[list[PathRegex], Field(max_length=100)] = []
    """Regular expressions of paths (the whole URL in forward_domain mode) let through without
    a login; each must match from the start."""
    basic_auth: BasicAuth | None = None
    """Send HTTP Basic credentials to the upstream; absent means none."""
    intercept_header_auth: bool = True
    """Accept `Authorization: Bearer` and `Basic` credentials of scripts instead of a login."""
    access_token_validity: Duration = "hours=24"  # noqa: S105 - a lifetime, not a secret
    """How long a login lasts, as unit=amount pairs joined by ';' (e.g. `hours=24`)."""
    refresh_token_validity: Duration = "days=30"  # noqa: S105 - a lifetime, not a secret
    """Lifetime of the outpost's refresh token (same syntax as accessTokenValidity)."""
    authorization_flow: Annotated[
        wire.Slug, Field(description="Slug of the core flow run when a user authorizes access.")
    ] = "default-provider-authorization-implicit-consent"
    invalidation_flow: Annotated[
        wire.Slug,
        Field(description="Slug of the core flow run when a user signs out through the outpost."),
    ] = "default-invalidation-flow"
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core provider with the resource; Orphan: keep it, unmanaged."""

    @model_validator(mode="after")
    def _rules(self) -> ProxyProviderSpec:
        if self.mode == "proxy" and self.internal_host is None:
            raise ValueError(_INTERNAL_FOR_PROXY.message)
        if self.mode == "forward_domain" and self.cookie_domain is None:
            raise ValueError(_DOMAIN_FOR_DOMAIN_MODE.message)
        return self


class ProxyProviderStatus(common.Status):
    """The core provider this resource manages."""

    provider_pk: Annotated[int, Field(ge=1, json_schema_extra={"format": "int64"})] | None = None
    """Primary key of the core proxy provider."""
    client_id: Annotated[str | None, Field(alias="clientID", max_length=255)] = None
    """The OAuth2 client_id the outposts use for this provider (public information)."""
    external_host: Annotated[str | None, Field(max_length=2000)] = None
    """The external host the core provider has."""


KIND = common.Kind(
    kind="ProxyProvider",
    plural="proxyproviders",
    short_names=("tsproxy",),
    spec=ProxyProviderSpec,
    status=ProxyProviderStatus,
    description="A proxy provider in Tessera's core: forward auth or reverse proxy by an outpost.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("Mode", "string", ".spec.mode", "Proxy mode"),
        common.Column("External Host", "string", ".status.externalHost", "Public URL"),
        common.Column(
            "Provider", "integer", ".status.providerPk", "Core provider primary key", priority=1
        ),
        common.AGE_COLUMN,
    ),
)
