"""What a proxy outpost reads of its providers: `/api/v3/outposts/proxy/` (authentik's shapes).

`ProxyOutpostConfig` is one provider as the outpost serves it, with the provider's OpenID
configuration embedded (`OpenIDConnectConfiguration`); `CALLBACK_SIGNATURE` marks the outpost's
OAuth2 callback. The core builds these (`providers.proxy`) and names them in `wire.outposts`
beside the admin API's outpost and proxy provider models; the proxy outpost
(`tessera.outposts.proxy`) imports this module alone, so its process does not hold the admin
models of outposts and OAuth2 providers it never parses (issue 17, the outpost's idle memory).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import WithJsonSchema

from tessera.core.wire.common import Response, Uuid

ProxyMode = Literal["proxy", "forward_single", "forward_domain"]
# The callback an outpost's OAuth2 client is sent back to (authentik's
# `OUTPOST_CALLBACK_SIGNATURE` in a query parameter).
CALLBACK_SIGNATURE = "X-authentik-auth-callback"


# A number of seconds, which authentik's schema describes as "number or integer".
Seconds = Annotated[float, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "integer"}]})]


class OpenIDConnectConfiguration(Response):
    """The part of a provider's discovery document an outpost needs (authentik's fields)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    end_session_endpoint: str
    introspection_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    subject_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]


class ProxyOutpostConfig(Response):
    """One provider of `/api/v3/outposts/proxy/`: everything a proxy outpost needs to serve it.

    `client_secret` also verifies the HS256 tokens the core signs for this client;
    `cookie_secret` (32 characters) signs the outpost's state and session cookies;
    `access_token_validity` is in seconds; `scopes_to_request` are the scope names of the
    provider's scope mappings."""

    pk: int
    name: str
    internal_host: str
    external_host: str
    internal_host_ssl_validation: bool
    client_id: str
    client_secret: str
    oidc_configuration: OpenIDConnectConfiguration
    cookie_secret: str
    certificate: Uuid | None
    skip_path_regex: str
    basic_auth_enabled: bool
    basic_auth_password_attribute: str
    basic_auth_user_attribute: str
    mode: ProxyMode
    cookie_domain: str
    access_token_validity: Seconds | None
    intercept_header_auth: bool
    scopes_to_request: list[str]
    assigned_application_slug: str
    assigned_application_name: str
