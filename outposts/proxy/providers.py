"""The proxy providers an outpost serves, compiled once per config update for the hot path.

`Provider.build` turns one `ProxyOutpostConfig` (as `/api/v3/outposts/proxy/` returns it) into
what a request needs: its host, its cookie name and keys derived from `cookie_secret`, its
skip-path regexes, its redirect URI. `Registry.lookup` picks the provider a request's host names:
exact host for `proxy` and `forward_single`, the longest `cookie_domain` suffix for
`forward_domain` (authentik's `lookupApp`). `handlers` and `reverse` call these.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera.core.wire import outpost_proxy as wire
from tessera.outposts.proxy import forwarded

if TYPE_CHECKING:
    import regex

PREFIX = "/outpost.goauthentik.io"
CALLBACK_QUERY = "X-authentik-auth-callback=true"
# SECURITY: the path a skip regex runs on is the client's; a pattern that backtracks badly on a
# crafted path must not hold the event loop: each is bounded in size and run with the `regex`
# module's timeout, and a timed-out match is no match (the request then needs a login).
MAX_PATTERN = 1024
SKIP_TIMEOUT = 0.05


class ConfigRefused(ValueError):
    """A provider config the outpost cannot serve (named in the log; the others still serve)."""


def _derive(secret: str, purpose: str, client_id: str) -> bytes:
    """A key for one purpose of one provider: two providers that share a cookie secret still
    never open each other's cookies or states."""
    info = f"{purpose}\0{client_id}".encode()
    return HKDF(hashes.SHA256(), 32, salt=b"tessera-proxy-outpost", info=info).derive(
        secret.encode()
    )


@dataclass(frozen=True)
class Endpoints:
    """The core's OAuth2 endpoints as the browser sees them."""

    issuer: str
    authorize: str
    token: str
    end_session: str
    introspect: str
    jwks: str


@dataclass(eq=False)
class Provider:
    pk: int
    name: str
    mode: str
    external: urllib.parse.SplitResult
    host: str  # normalised host[:port] of external_host
    root_redirect_uri: str  # `<external_host>?X-authentik-auth-callback=true`, as registered
    internal_host: str
    verify_tls: bool
    client_id: str
    client_secret: str = field(repr=False)
    endpoints: Endpoints
    cookie_name: str
    cookie_domain: str
    session_key: bytes = field(repr=False)
    state_key: bytes = field(repr=False)
    skips: tuple[regex.Pattern[str], ...]
    basic_auth: tuple[str, str] | None  # (user attribute, password attribute)
    token_validity: int
    intercept_header_auth: bool
    scopes: str
    app_slug: str
    app_name: str
    certificate: str | None = None  # the key pair served on the HTTPS listener for this host

    @classmethod
    def build(cls, config: wire.ProxyOutpostConfig) -> Provider:
        mode = config.mode
        external = urllib.parse.urlsplit((config.external_host or "").strip().rstrip("/"))
        host = forwarded.normal_host(external.netloc, external.scheme)
        if external.scheme not in ("http", "https") or host is None:
            raise ConfigRefused(f"external_host {config.external_host!r} is not an http(s) URL")
        client_id, secret = config.client_id or "", config.client_secret or ""
        cookie_secret = config.cookie_secret or ""
        if not client_id or not secret or len(cookie_secret) < 16:
            raise ConfigRefused("client_id, client_secret and cookie_secret are required")
        internal = (config.internal_host or "").strip().rstrip("/")
        if mode == "proxy" and urllib.parse.urlsplit(internal).scheme not in ("http", "https"):
            raise ConfigRefused(f"internal_host {internal!r} is not an http(s) URL")
        domain = (config.cookie_domain or "").strip().lstrip(".").lower()
        if mode == "forward_domain" and not domain:
            raise ConfigRefused("forward_domain needs a cookie_domain")
        oidc = config.oidc_configuration
        user_attr, password_attr = (
            config.basic_auth_user_attribute or "",
            config.basic_auth_password_attribute or "",
        )
        return cls(
            pk=config.pk,
            name=config.name,
            mode=mode,
            external=external,
            host=host,
            root_redirect_uri=f"{config.external_host}?{CALLBACK_QUERY}",
            internal_host=internal,
            verify_tls=config.internal_host_ssl_validation is not False,
            client_id=client_id,
            client_secret=secret,
            endpoints=Endpoints(
                issuer=oidc.issuer,
                authorize=oidc.authorization_endpoint,
                token=oidc.token_endpoint,
                end_session=oidc.end_session_endpoint,
                introspect=oidc.introspection_endpoint,
                jwks=oidc.jwks_uri,
            ),
            cookie_name="authentik_proxy_" + hashlib.sha256(client_id.encode()).hexdigest()[:8],
            cookie_domain=domain if mode == "forward_domain" else "",
            session_key=_derive(cookie_secret, "session", client_id),
            state_key=_derive(cookie_secret, "state", client_id),
            skips=tuple(compile_skips(config.skip_path_regex or "")),
            basic_auth=(user_attr, password_attr) if config.basic_auth_enabled else None,
            token_validity=int(config.access_token_validity or 86400),
            intercept_header_auth=config.intercept_header_auth is not False,
            scopes=" ".join(config.scopes_to_request or ["openid", "profile", "email"]),
            app_slug=config.assigned_application_slug,
            app_name=config.assigned_application_name,
            certificate=str(config.certificate) if config.certificate else None,
        )

    @property
    def base_url(self) -> str:
        return f"{self.external.scheme}://{self.external.netloc}"

    @property
    def secure(self) -> bool:
        return self.external.scheme == "https"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}{PREFIX}/callback?{CALLBACK_QUERY}"

    def start_url(self, rd: str) -> str:
        return f"{self.base_url}{PREFIX}/start?" + urllib.parse.urlencode({"rd": rd})

    def skipped(self, path: str, url: str) -> bool:
        """Whether `skip_path_regex` lets this request through without identity: anchored at
        both ends, against the path, or the full URL in domain mode (authentik's rule)."""
        subject = url if self.mode == "forward_domain" else path
        for pattern in self.skips:
            try:
                if pattern.fullmatch(subject, timeout=SKIP_TIMEOUT):
                    return True
            except TimeoutError:
                continue
        return False

    def covers(self, host: str) -> bool:
        """Whether a browser at `host` shares this provider's session cookie."""
        if self.mode != "forward_domain":
            return host == self.host
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name == self.cookie_domain or name.endswith("." + self.cookie_domain)


def compile_skips(source: str) -> Iterable[regex.Pattern[str]]:
    """One pattern a line; a line that is not a valid regex or too long is refused (the core
    refuses it when saved; an outpost that still meets one ignores that line only). The `regex`
    module (about 1.4 MiB) is imported here, by an outpost with a provider that has patterns."""
    lines = [line.strip() for line in source.splitlines()]
    if not any(lines):
        return
    import regex

    for line in lines:
        if not line or len(line) > MAX_PATTERN:
            continue
        try:
            yield regex.compile(line)
        except regex.error:
            continue


class Registry:
    """The providers of one config generation, indexed by host."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers = tuple(providers)
        self._exact = {p.host: p for p in providers if p.mode != "forward_domain"}
        # longest cookie domain first: `a.b.example.com` before `example.com`
        self._domains = sorted(
            (p for p in providers if p.mode == "forward_domain"),
            key=lambda p: len(p.cookie_domain),
            reverse=True,
        )
        self.has_proxied = any(p.mode == "proxy" for p in providers)

    def owner(self, host: str) -> Provider | None:
        """The provider whose host is `host`, or whose cookie domain covers it (no fallback)."""
        found = self._exact.get(host)
        if found is not None:
            return found
        return next((p for p in self._domains if p.covers(host) or p.host == host), None)

    def lookup(self, host: str) -> Provider | None:
        found = self._exact.get(host)
        if found is not None:
            return found
        for provider in self._domains:
            if provider.covers(host) or provider.host == host:
                return provider
        if len(self.providers) == 1 and self._domains:
            return self.providers[0]  # authentik: a lone domain-mode app takes every host
        return None

    def proxied(self, host: str) -> Provider | None:
        """The `proxy`-mode provider whose external host is `host`."""
        found = self._exact.get(host)
        return found if found is not None and found.mode == "proxy" else None
