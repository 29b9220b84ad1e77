"""The `OAuth2Provider` custom resource: an OAuth2/OIDC provider in the core, and its credentials.

The operator turns a spec into `/api/v3/providers/oauth2/` fields and writes the client id, client
secret, issuer and discovery URL into the Secret named by `credentialsSecret`. The CRD schema is
generated from these models (`tessera.operator.crds`); the CEL rules of the CRD are checked again
here, in Python, so a spec parsed by the operator is as valid as one the API server admitted.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tessera.core.wire import common as wire
from tessera.operator.resources import common
from tessera.operator.resources.common import Rule

ClientType = Literal["confidential", "public"]
MatchingMode = Literal["strict", "regex"]
SubMode = Literal[
    "hashed_user_id", "user_id", "user_uuid", "user_username", "user_email", "user_upn"
]
IssuerMode = Literal["per_provider", "global"]
KeyAlgorithm = Literal["RSA", "EC"]

_UNIT = "(weeks|days|hours|minutes|seconds)=[1-9][0-9]{0,5}"
DURATION_PATTERN = f"^{_UNIT}(;{_UNIT}){{0,4}}$"
# authentik's duration syntax: unit=amount pairs joined by ';' (units weeks, days, hours, minutes,
# seconds; amounts positive integers), as the core's `*_validity` fields take them.
Duration = Annotated[str, Field(max_length=120, pattern=DURATION_PATTERN)]
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
Scope = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21\x23-\x5B\x5D-\x7E]+$")]

SCRIPT_URI = r"^\s*(?i:javascript|data|vbscript):"
ABSOLUTE_URI = r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+"  # the whole URI
_NOT_SCRIPT = Rule(
    rule=f"!self.url.matches({common.cel_string(SCRIPT_URI)})",
    message="javascript:, data: and vbscript: URIs are never redirect targets",
)
_ABSOLUTE_WHEN_STRICT = Rule(
    rule="self.matchingMode != 'strict' || "
    f"self.url.matches({common.cel_string(f'^{ABSOLUTE_URI}$')})",
    message="a strict redirect URI is an absolute URI (scheme:...) without spaces",
)
_KEY_CHOICE = Rule(
    rule="has(self.name) != has(self.generate)",
    message="set exactly one of name (an existing core key pair) and generate",
)
_NO_SECRET_WHEN_PUBLIC = Rule(
    rule="!(self.clientType == 'public' && has(self.clientSecretRef))",
    message="clientSecretRef is only for confidential clients: a public client has no secret",
    field_path=".clientSecretRef",
)
_OWN_CREDENTIALS_SECRET = Rule(
    rule="!has(self.clientSecretRef) || self.clientSecretRef.name != self.credentialsSecret.name",
    message="credentialsSecret is written by the operator: it cannot be the clientSecretRef Secret",
    field_path=".credentialsSecret.name",
)


class RedirectURI(common.Model):
    """A redirect URI the provider accepts."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_NOT_SCRIPT, _ABSOLUTE_WHEN_STRICT)
    }

    url: Annotated[str, Field(min_length=1, max_length=2000)]
    """The URI (strict) or a regular expression it must match entirely (regex)."""
    matching_mode: MatchingMode = "strict"
    """strict: exact comparison; regex: the whole URI must match `url` as a regular expression."""

    @model_validator(mode="after")
    def _rules(self) -> RedirectURI:
        if re.search(SCRIPT_URI, self.url):
            raise ValueError(_NOT_SCRIPT.message)
        if self.matching_mode == "strict" and not re.fullmatch(ABSOLUTE_URI, self.url, re.ASCII):
            raise ValueError(_ABSOLUTE_WHEN_STRICT.message)
        return self


class SigningKey(common.Model):
    """The key that signs ID tokens and access tokens: an existing core key pair, or a new one.

    Without a signing key the core signs with HS256 and the client secret (authentik's behaviour).
    """

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_KEY_CHOICE)
    }

    name: wire.Name | None = None
    """Name of an existing core certificate-key pair."""
    generate: KeyAlgorithm | None = None
    """Have the operator generate a key pair for this provider (RSA 4096 or EC P-256)."""

    @model_validator(mode="after")
    def _one_choice(self) -> SigningKey:
        if (self.name is None) == (self.generate is None):
            raise ValueError(_KEY_CHOICE.message)
        return self


class OAuth2ProviderSpec(common.Model):
    """The desired OAuth2/OIDC provider. Secrets are never inline: see clientSecretRef."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_NO_SECRET_WHEN_PUBLIC, _OWN_CREDENTIALS_SECRET)
    }

    client_type: ClientType = "confidential"
    """confidential clients authenticate with a secret; public ones (SPAs, CLIs) cannot keep one."""
    redirect_uris: Annotated[list[RedirectURI], Field(max_length=64, alias="redirectURIs")] = []
    """Redirect URIs of the authorization code and implicit flows."""
    scopes: Annotated[list[Scope], Field(max_length=32), common.SET, common.UNIQUE] = [
        "openid",
        "email",
        "profile",
    ]
    """Scopes the client may request, by the names of the core's scope mappings."""
    signing_key: SigningKey | None = None
    """The token signing key; absent means HS256 with the client secret."""
    access_code_validity: Duration = "minutes=1"
    """Lifetime of an authorization code, as unit=amount pairs joined by ';' (units weeks, days,
    hours, minutes, seconds; e.g. `minutes=1`, `hours=1;minutes=30`)."""
    access_token_validity: Duration = "hours=1"  # noqa: S105 - a lifetime, not a secret
    """Lifetime of an access token (same syntax as accessCodeValidity)."""
    refresh_token_validity: Duration = "days=30"  # noqa: S105 - a lifetime, not a secret
    """Lifetime of a refresh token (same syntax as accessCodeValidity)."""
    sub_mode: SubMode = "hashed_user_id"
    """What the `sub` claim holds."""
    issuer_mode: IssuerMode = "per_provider"
    """per_provider: issuer <core>/application/o/<slug>/; global: the core's root URL."""
    # (wire.Slug carries a description of its own: an explicit one replaces it.)
    authorization_flow: Annotated[
        wire.Slug, Field(description="Slug of the core flow run when a user authorizes the client.")
    ] = "default-provider-authorization-implicit-consent"
    invalidation_flow: Annotated[
        wire.Slug,
        Field(description="Slug of the core flow run when a user signs out through the provider."),
    ] = "default-invalidation-flow"
    client_secret_ref: common.SecretKeyRef | None = None
    """Bring your own client secret (confidential clients only); else the core generates one."""
    credentials_secret: common.SecretRef
    """Secret the operator writes: client_id, client_secret (if confidential), issuer and
    discovery_url."""
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core provider with the resource; Orphan: keep it, unmanaged."""

    @model_validator(mode="after")
    def _rules(self) -> OAuth2ProviderSpec:
        if self.client_type == "public" and self.client_secret_ref is not None:
            raise ValueError(_NO_SECRET_WHEN_PUBLIC.message)
        ref = self.client_secret_ref
        if ref is not None and ref.name == self.credentials_secret.name:
            raise ValueError(_OWN_CREDENTIALS_SECRET.message)
        return self


class OAuth2ProviderStatus(common.Status):
    """The core provider this resource manages."""

    provider_pk: Annotated[int, Field(ge=1, json_schema_extra={"format": "int64"})] | None = None
    """Primary key of the core OAuth2 provider."""
    client_id: Annotated[str | None, Field(alias="clientID", max_length=255)] = None
    """The provider's client_id (public information; the secret is only in credentialsSecret)."""


KIND = common.Kind(
    kind="OAuth2Provider",
    plural="oauth2providers",
    short_names=("tsoauth2",),
    spec=OAuth2ProviderSpec,
    status=OAuth2ProviderStatus,
    description="An OAuth2/OpenID Connect provider in Tessera's core, with its credentials Secret.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("Client ID", "string", ".status.clientID", "OAuth2 client_id"),
        common.Column(
            "Provider", "integer", ".status.providerPk", "Core provider primary key", priority=1
        ),
        common.AGE_COLUMN,
    ),
)
