"""Wire models of the OAuth2 / OpenID Connect provider's admin API (authentik's shapes):
`/api/v3/providers/oauth2/`, `/api/v3/providers/all/`, `/api/v3/propertymappings/provider/scope/`.
"""

from __future__ import annotations

import re
import typing
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from tessera.core.wire import durations
from tessera.core.wire.common import LongText, Name, Request, Response, Uuid

ClientType = Literal["confidential", "public"]
SubMode = Literal["hashed_user_id", "user_id", "user_uuid", "user_username", "user_email"]
IssuerMode = Literal["per_provider", "global"]
MatchingMode = Literal["strict", "regex"]
RedirectUriType = Literal["authorization", "logout"]
LogoutMethod = Literal["backchannel", "frontchannel"]
# authentik's grant type names: `implicit` and `hybrid` are the authorize endpoint's response
# types without and with a code; token exchange is accepted but not served (unsupported_grant_type).
GrantType = Literal[
    "authorization_code",
    "implicit",
    "hybrid",
    "refresh_token",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
GRANT_TYPES: tuple[GrantType, ...] = typing.get_args(GrantType)
# Tessera rotates a refresh token at every use: authentik's threshold of zero.
REFRESH_TOKEN_THRESHOLD = "seconds=0"  # noqa: S105 - a duration

_FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript", "file"}
MAX_REDIRECT_URIS = 100
MAX_REGEX_LENGTH = 500


# authentik's duration strings (`hours=1`, `days=30;hours=2`), parsed in `wire.durations`.
Duration = durations.Positive


def _client_id(value: str) -> str:
    if not value.isprintable() or " " in value:
        raise ValueError("A client ID has printable characters and no spaces.")
    return value


ClientId = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_client_id)]
ClientSecret = Annotated[str, Field(min_length=8, max_length=255)]


class RedirectURI(Request):
    matching_mode: MatchingMode = "strict"
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    redirect_uri_type: RedirectUriType = "authorization"

    @model_validator(mode="after")
    def _valid_url(self) -> RedirectURI:
        if self.matching_mode == "regex":
            if len(self.url) > MAX_REGEX_LENGTH:
                raise ValueError(f"A regex redirect URI is at most {MAX_REGEX_LENGTH} characters.")
            try:
                re.compile(self.url)
            except re.error as exc:
                raise ValueError(f"Invalid regular expression: {exc}") from None
            return self
        parts = urllib.parse.urlsplit(self.url)
        if not parts.scheme or parts.scheme.lower() in _FORBIDDEN_SCHEMES:
            raise ValueError("A redirect URI needs a scheme (https://, http:// or an app's own).")
        if parts.scheme.lower() in ("http", "https") and not parts.netloc:
            raise ValueError("A web redirect URI needs a host.")
        if parts.fragment:
            raise ValueError("A redirect URI cannot contain a fragment.")
        return self


class OAuth2ProviderRequest(Request):
    name: Name
    authentication_flow: Uuid | None = None
    authorization_flow: Uuid
    invalidation_flow: Uuid
    property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(default_factory=list)
    client_type: ClientType = "confidential"
    grant_types: Annotated[list[GrantType], Field(max_length=len(GRANT_TYPES))] = Field(
        default_factory=lambda: list(GRANT_TYPES)
    )
    client_id: ClientId | None = None
    client_secret: ClientSecret | None = None
    access_code_validity: Duration = "minutes=1"
    access_token_validity: Duration = "hours=1"  # noqa: S105 - a duration
    refresh_token_validity: Duration = "days=30"  # noqa: S105 - a duration
    refresh_token_threshold: Annotated[str, Field(min_length=1, max_length=100)] = (
        REFRESH_TOKEN_THRESHOLD
    )
    include_claims_in_id_token: bool = True
    signing_key: Uuid | None = None
    encryption_key: Uuid | None = None
    redirect_uris: Annotated[list[RedirectURI], Field(max_length=MAX_REDIRECT_URIS)] = Field(
        default_factory=list
    )
    logout_uri: Annotated[str, Field(max_length=2000)] = ""
    logout_method: LogoutMethod = "backchannel"
    sub_mode: SubMode = "hashed_user_id"
    issuer_mode: IssuerMode = "per_provider"
    jwt_federation_sources: Annotated[list[Uuid], Field(max_length=0)] = Field(default_factory=list)
    jwt_federation_providers: Annotated[list[int], Field(max_length=0)] = Field(
        default_factory=list
    )
    managed: Annotated[str, Field(min_length=1, max_length=300)] | None = None

    @field_validator("authentication_flow")
    @classmethod
    def _no_authentication_flow(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "Tessera signs users in with the brand's authentication flow; leave this empty."
            )
        return None

    @field_validator("encryption_key")
    @classmethod
    def _no_encryption(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("Tessera does not encrypt tokens (JWE); leave this empty.")
        return None

    @field_validator("refresh_token_threshold")
    @classmethod
    def _always_rotate(cls, value: str) -> str:
        if durations.parse(value).total_seconds() != 0:
            raise ValueError(
                "Tessera renews the refresh token at every use: only seconds=0 is accepted."
            )
        return REFRESH_TOKEN_THRESHOLD

    @field_validator("grant_types")
    @classmethod
    def _distinct(cls, value: list[GrantType]) -> list[GrantType]:
        return list(dict.fromkeys(value))


class ProviderBase(Response):
    pk: int
    name: str
    authentication_flow: Uuid | None
    authorization_flow: Uuid | None
    invalidation_flow: Uuid | None
    property_mappings: list[Uuid]
    component: str
    assigned_application_slug: str | None
    assigned_application_name: str | None
    assigned_backchannel_application_slug: str | None
    assigned_backchannel_application_name: str | None
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str
    managed: str | None


class Provider(ProviderBase):
    """`/api/v3/providers/all/`."""


class RedirectURIResponse(Response):
    matching_mode: MatchingMode
    url: str
    redirect_uri_type: RedirectUriType


class OAuth2Provider(ProviderBase):
    authorization_flow: Uuid
    invalidation_flow: Uuid
    client_type: ClientType
    grant_types: list[GrantType]
    client_id: str
    client_secret: str
    access_code_validity: str
    access_token_validity: str
    refresh_token_validity: str
    refresh_token_threshold: str
    include_claims_in_id_token: bool
    signing_key: Uuid | None
    encryption_key: Uuid | None
    redirect_uris: list[RedirectURIResponse]
    logout_uri: str
    logout_method: LogoutMethod
    sub_mode: SubMode
    issuer_mode: IssuerMode
    jwt_federation_sources: list[Uuid]
    jwt_federation_providers: list[int]


class OAuth2ProviderSetupUrls(Response):
    issuer: str
    authorize: str
    token: str
    user_info: str
    provider_info: str
    logout: str
    jwks: str
    dcr_registration: str | None  # no dynamic client registration in Tessera


class ScopeMappingRequest(Request):
    # Set only on the system mappings Tessera creates; a request may repeat a mapping's own.
    managed: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    name: Name
    scope_name: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    description: LongText = ""
    expression: Annotated[str, Field(min_length=1, max_length=65536)]


class ScopeMapping(Response):
    pk: Uuid
    managed: str | None
    name: str
    expression: str
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str
    scope_name: str
    description: str
