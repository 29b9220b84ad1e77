"""Wire models of outposts and proxy providers (authentik's shapes).

- `/api/v3/outposts/instances/`: `Outpost`, `OutpostRequest`, the `config` dict (`OutpostConfig`,
  authentik's `OutpostConfig` keys and defaults) and `OutpostDefaultConfig`;
- `/api/v3/providers/proxy/`: `ProxyProvider`, `ProxyProviderRequest`;
- `/api/v3/outposts/proxy/`: `ProxyOutpostConfig`, what a proxy outpost reads about each of its
  providers, with the provider's OpenID configuration embedded (`OpenIDConnectConfiguration`);
  they live in `outpost_proxy` (the proxy outpost imports that module alone) and are named here
  too.

The core builds these (`providers.proxy`, `api.resources.outposts`); the proxy outpost parses
`ProxyOutpostConfig` with `outpost_proxy`. Request models validate hostile input: hosts are
http(s) URLs, every line of `skip_path_regex` compiles, `cookie_domain` is a bare domain that the
external host lies under in `forward_domain` mode.
"""

from __future__ import annotations

import re
import urllib.parse
import warnings
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from tessera.core.wire import durations
from tessera.core.wire.common import Name, Request, Response, Uuid, check_json_object
from tessera.core.wire.oauth2 import Provider, ProviderBase, RedirectURIResponse
from tessera.core.wire.outpost_proxy import CALLBACK_SIGNATURE as CALLBACK_SIGNATURE
from tessera.core.wire.outpost_proxy import OpenIDConnectConfiguration as OpenIDConnectConfiguration
from tessera.core.wire.outpost_proxy import ProxyMode as ProxyMode
from tessera.core.wire.outpost_proxy import ProxyOutpostConfig as ProxyOutpostConfig

# Outposts Tessera runs: proxy (`tessera outpost proxy`) and LDAP (`tessera outpost ldap`).
# authentik's schema also knows radius and rac, which Tessera does not serve.
OutpostType = Literal["proxy", "ldap"]
EMBEDDED_MANAGED = "goauthentik.io/outposts/embedded"
EMBEDDED_NAME = "authentik Embedded Outpost"
CALLBACK_PATH = "outpost.goauthentik.io/callback"
MAX_CONFIG_BYTES = 64 * 1024
MAX_REGEX_LINES = 100
MAX_REGEX_LINE = 1000
MAX_PROVIDERS = 1000
ProviderPk = Annotated[int, Field(ge=1, le=2**53)]  # as the API's other integer keys
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.ASCII)


# Hosts and paths ------------------------------------------------------------------------------


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host; no user info, no fragment, no control characters."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise ValueError("Enter a valid URL (no spaces or control characters).")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError("Enter a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("Enter a valid URL starting with http:// or https://.")
    if "@" in parts.netloc:
        raise ValueError("A URL with a user name or password is not accepted here.")
    if parts.fragment:
        raise ValueError("A URL with a fragment (#...) is not accepted here.")
    return value


HttpUrl = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_http_url)]


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value else value


OptionalHttpUrl = Annotated[str, Field(max_length=2000), AfterValidator(_optional_http_url)]


def _path_regexes(value: str) -> str:
    """Every non-empty line compiles (authentik skips the ones that do not; we refuse them)."""
    lines = [line for line in value.splitlines() if line.strip()]
    if len(lines) > MAX_REGEX_LINES:
        raise ValueError(f"At most {MAX_REGEX_LINES} regular expressions.")
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_REGEX_LINE:
            raise ValueError(f"Line {number}: at most {MAX_REGEX_LINE} characters.")
        try:
            with warnings.catch_warnings():  # `re` warns of syntax it may read otherwise later
                warnings.simplefilter("ignore", FutureWarning)
                re.compile(line)
        except re.error as exc:
            raise ValueError(f"Line {number} is not a valid regular expression: {exc}") from None
        except (RecursionError, OverflowError):
            raise ValueError(f"Line {number} is nested or repeated too deeply.") from None
    return value


PathRegexes = Annotated[str, Field(max_length=65536), AfterValidator(_path_regexes)]


def _cookie_domain(value: str) -> str:
    """A bare domain (`example.com`, or `.example.com` as cookies allow); nothing else."""
    if not value:
        return value
    name = value.lower().removeprefix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "Enter a domain such as example.com (no scheme, port, path or wildcard): "
            "the cookie is then valid for it and every subdomain."
        )
    return value


CookieDomain = Annotated[str, Field(max_length=255), AfterValidator(_cookie_domain)]


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def under_domain(host: str, domain: str) -> bool:
    """Whether `host` is `domain` or one of its subdomains (a leading dot ignored)."""
    domain = domain.lower().removeprefix(".")
    return host == domain or host.endswith("." + domain)


def callback_urls(external_host: str) -> list[str]:
    """The redirect URIs of a proxy provider's OAuth2 client, as authentik registers them: the
    outpost's callback path on the external host, and the external host itself (forward auth
    behind Traefik and Caddy sees the callback at whatever path), each with the signature."""
    base = external_host if external_host.endswith("/") else external_host + "/"
    return [
        urllib.parse.urljoin(base, CALLBACK_PATH) + f"?{CALLBACK_SIGNATURE}=true",
        external_host + f"?{CALLBACK_SIGNATURE}=true",
    ]


# Proxy providers ------------------------------------------------------------------------------


class ProxyProviderRequest(Request):
    name: Name
    authentication_flow: Uuid | None = None
    authorization_flow: Uuid
    invalidation_flow: Uuid
    # Scope mappings beyond the ones every proxy provider has (openid, email, profile,
    # entitlements, ak_proxy).
    property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(default_factory=list)
    internal_host: OptionalHttpUrl = ""
    external_host: HttpUrl
    internal_host_ssl_validation: bool = True
    certificate: Uuid | None = None
    skip_path_regex: PathRegexes = ""
    basic_auth_enabled: bool = False
    basic_auth_password_attribute: Annotated[str, Field(max_length=200)] = ""
    basic_auth_user_attribute: Annotated[str, Field(max_length=200)] = ""
    mode: ProxyMode = "proxy"
    intercept_header_auth: bool = True
    cookie_domain: CookieDomain = ""
    jwt_federation_sources: Annotated[list[Uuid], Field(max_length=0)] = Field(default_factory=list)
    jwt_federation_providers: Annotated[list[int], Field(max_length=0)] = Field(
        default_factory=list
    )
    access_token_validity: durations.Positive = "hours=24"  # noqa: S105 - a duration
    refresh_token_validity: durations.Positive = "days=30"  # noqa: S105 - a duration
    managed: Annotated[str, Field(min_length=1, max_length=300)] | None = None

    @field_validator("authentication_flow")
    @classmethod
    def _no_authentication_flow(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "Tessera signs users in with the brand's authentication flow; leave this empty."
            )
        return None

    def conflicts(self) -> dict[str, list[str]]:
        """Messages by field for settings that contradict each other (empty: none); the
        provider slice raises them as one 400."""
        found: dict[str, list[str]] = {}
        if self.mode == "proxy" and not self.internal_host:
            found["internal_host"] = [
                "Internal host cannot be empty when forward auth is disabled."
            ]
        if self.basic_auth_enabled and not (
            self.basic_auth_user_attribute and self.basic_auth_password_attribute
        ):
            found["basic_auth_enabled"] = [
                "User and password attributes must be set when basic auth is enabled."
            ]
        under = under_domain(host_of(self.external_host), self.cookie_domain)
        if self.mode == "forward_domain" and not self.cookie_domain:
            found["cookie_domain"] = [
                "Domain mode needs the domain its applications share (e.g. example.com)."
            ]
        elif self.cookie_domain and not under:
            found["cookie_domain"] = [
                "The external host (where the login ends) must lie under the cookie domain, "
                "or the browser would not keep the cookie."
            ]
        return found


class ProxyProvider(ProviderBase):
    authorization_flow: Uuid
    invalidation_flow: Uuid
    client_id: str
    internal_host: str
    external_host: str
    internal_host_ssl_validation: bool
    certificate: Uuid | None
    skip_path_regex: str
    basic_auth_enabled: bool
    basic_auth_password_attribute: str
    basic_auth_user_attribute: str
    mode: ProxyMode
    intercept_header_auth: bool
    redirect_uris: list[RedirectURIResponse]
    cookie_domain: str
    jwt_federation_sources: list[Uuid]
    jwt_federation_providers: list[int]
    access_token_validity: str
    refresh_token_validity: str
    outpost_set: list[str]


# Outposts -------------------------------------------------------------------------------------

LogLevel = Literal["trace", "debug", "info", "warning", "error"]
ShortStr = Annotated[str, Field(max_length=253)]


class OutpostConfig(BaseModel):
    """An outpost's `config`: authentik's `OutpostConfig` keys, types and defaults.

    Keys Tessera does not know are kept as given (a newer authentik's, or a tool's own); the
    known ones are checked (types, URLs, the refresh interval's duration)."""

    model_config = ConfigDict(extra="allow", strict=True)

    authentik_host: OptionalHttpUrl = ""
    authentik_host_insecure: bool = False
    authentik_host_browser: OptionalHttpUrl = ""
    log_level: LogLevel = "info"
    object_naming_template: Annotated[str, Field(max_length=200)] = "ak-outpost-%(name)s"
    refresh_interval: durations.Positive = "minutes=5"
    container_image: Annotated[str, Field(max_length=500)] | None = None
    docker_network: ShortStr | None = None
    docker_map_ports: bool = True
    docker_labels: dict[str, str] | None = None
    kubernetes_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    kubernetes_namespace: ShortStr = "default"
    kubernetes_ingress_annotations: dict[str, str] = Field(default_factory=dict)
    kubernetes_ingress_secret_name: ShortStr = "authentik-outpost-tls"  # noqa: S105 - a name
    kubernetes_ingress_class_name: ShortStr | None = None
    kubernetes_ingress_path_type: ShortStr | None = None
    kubernetes_httproute_annotations: dict[str, str] = Field(default_factory=dict)
    kubernetes_httproute_parent_refs: list[dict[str, str]] = Field(default_factory=list)
    kubernetes_service_type: ShortStr = "ClusterIP"
    kubernetes_disabled_components: list[ShortStr] = Field(default_factory=list)
    kubernetes_image_pull_secrets: list[ShortStr] = Field(default_factory=list)
    kubernetes_json_patches: dict[str, list[dict[str, Any]]] | None = None
    kubernetes_disable_x509_strict: bool = False


def _outpost_config(value: dict[str, Any]) -> dict[str, Any]:
    check_json_object(value, MAX_CONFIG_BYTES)
    return value


class OutpostRequest(Request):
    name: Name
    type: OutpostType
    providers: Annotated[list[ProviderPk], Field(max_length=MAX_PROVIDERS)]
    service_connection: Uuid | None = None
    config: Annotated[dict[str, Any], AfterValidator(_outpost_config)]
    managed: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @field_validator("service_connection")
    @classmethod
    def _no_service_connection(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "Tessera deploys outposts with its Kubernetes operator, not through service "
                "connections; leave this empty."
            )
        return None

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class ServiceConnection(Response):
    """authentik's service connections (Docker, Kubernetes); Tessera has none (always null)."""

    pk: Uuid
    name: str
    local: bool
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str


class Outpost(Response):
    pk: Uuid
    name: str
    type: OutpostType
    providers: list[int]
    providers_obj: list[Provider]
    service_connection: Uuid | None
    service_connection_obj: ServiceConnection | None
    refresh_interval_s: int
    token_identifier: str
    config: dict[str, Any]
    managed: str | None


class OutpostDefaultConfig(Response):
    config: dict[str, Any]
