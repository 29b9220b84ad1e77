"""The endpoints under `/outpost.goauthentik.io/` (authentik's `internal/outpost/proxyv2`).

`auth/traefik`, `auth/caddy`, `auth/envoy/<path>`: 200 with the identity headers, or 302 to
`start` (401 for scripts). `auth/nginx`: 200, or 401 so that nginx's `error_page 401` sends the
browser to `start`. `start?rd=`: checks `rd`, binds a signed state to the browser and sends it to
the core's authorization endpoint. `callback`: checks the state, exchanges the code, verifies the
tokens, seals the session into its cookie. `sign_out`: ends the session here and at the core.
`ping`: 204. A check (or `start`, which nginx's `error_page` sends the browser to) whose original
URL carries authentik's callback or logout signature completes that instead (`signed`).
`app` mounts these; `reverse` shares `authenticate`, `unauthenticated` and `signed_answer`.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse

from aiohttp import web

from tessera.outposts.proxy import forwarded, identity, machine, oidc, pages, sealing, signed
from tessera.outposts.proxy.outpost import Outpost
from tessera.outposts.proxy.providers import PREFIX, Provider
from tessera.outposts.proxy.sessions import Session

OUTPOST = web.AppKey("proxy_outpost", Outpost)
REQUEST_OUTPOST = web.RequestKey("proxy_outpost", Outpost)  # set by `app.proxy_middleware`
HEADER_AUTH = web.RequestKey("proxy_header_auth", bool)  # the Authorization header logged in
BIND_SUFFIX = "_bind"
MAX_PARAM = 4096


def outpost_of(request: web.Request) -> Outpost:
    found = request.get(REQUEST_OUTPOST)
    if found is None:
        # `config_dict` builds a chain of the apps' mappings on every access: once per request.
        found = request[REQUEST_OUTPOST] = request.config_dict[OUTPOST]
    return found


# Shared by every check ------------------------------------------------------------------------


def locate(request: web.Request, kind: str, tail: str = "") -> tuple[Provider, forwarded.Original]:
    """The provider and original request a request is about, or a 400 naming what is wrong."""
    outpost = outpost_of(request)
    believe = forwarded.trusted(request, outpost.networks)
    try:
        original = forwarded.original(request, kind, believe, tail)
    except forwarded.BadForwarding as exc:
        raise pages.problem(request, 400, "Bad forwarded request", str(exc)) from None
    provider = outpost.registry.lookup(original.host)
    if provider is None:
        raise pages.problem(
            request,
            400,
            "no app for hostname",
            f"No provider serves {original.host}.",
            Host=original.host,
        )
    return provider, original


async def authenticate(request: web.Request, provider: Provider) -> Session | None:
    """The session of the request's cookie, or of its Authorization header when the provider
    intercepts header authentication (then a header that proves nothing is a 401)."""
    outpost = outpost_of(request)
    cookies = sealing.parse_cookies(request.headers.get("Cookie"), provider.cookie_name)
    sealed = sealing.join(provider.cookie_name, cookies)
    if sealed is not None:
        session = outpost.sessions.open(provider, sealed)
        if session is not None and await outpost.sessions.confirmed(provider, session):
            return session
    header = request.headers.get("Authorization")
    if header and provider.intercept_header_auth:
        try:
            session = await outpost.machine.authenticate(provider, header)
        except machine.Unavailable:
            raise pages.problem(
                request,
                503,
                "Identity provider unavailable",
                "The credentials cannot be checked while the identity provider is unreachable.",
            ) from None
        request[HEADER_AUTH] = session is not None
        if session is None:
            raise pages.problem(
                request,
                401,
                "Unauthenticated",
                "The Authorization header was not accepted. Due to 'Receive header "
                "authentication' being set, no redirect is performed.",
            )
        return session
    return None


def scripted(request: web.Request) -> bool:
    """A request from a script rather than a page load: gets 401, never a login redirect.

    # SECURITY (authentik's #6886, #5603): a background XHR must not start a login, whose
    # redirect target would be the XHR's URL instead of the page the user is on.
    """
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return True
    accept = request.headers.get("Accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


def unauthenticated(
    request: web.Request, provider: Provider, original: forwarded.Original, answer_401: bool
) -> web.StreamResponse:
    if answer_401 or scripted(request):
        raise pages.problem(request, 401, "Unauthenticated", "Log in to use this application.")
    raise web.HTTPFound(provider.start_url(original.url))


def signed_answer(
    request: web.Request, provider: Provider, url: str, answer_401: bool = False
) -> None:
    """Raise the answer to a request whose original `url` carries the callback or the logout
    signature (`signed`); return when it carries neither. `answer_401`: nginx's check, which
    can only say 401, whereupon its `error_page` sends the browser to `start` with the URL."""
    which = signed.signature(url.partition("?")[2])
    if which is None:
        return
    if answer_401:
        raise pages.problem(request, 401, "Unauthenticated", "Completing a login or logout.")
    if which == signed.CALLBACK:
        raise web.HTTPFound(signed.callback_hop(provider, url))
    raise ended(request, provider)


# auth/* -------------------------------------------------------------------------------------


async def _check(request: web.Request, kind: str, tail: str = "") -> web.StreamResponse:
    outpost = outpost_of(request)
    try:
        response, result = await _decide(request, kind, tail)
    except web.HTTPException as exc:
        outpost.observe(_OUTCOMES.get(exc.status, "refused"))
        raise
    outpost.observe(result)
    return response


_OUTCOMES = {302: "redirected", 401: "unauthorized", 503: "unavailable"}


async def _decide(request: web.Request, kind: str, tail: str) -> tuple[web.StreamResponse, str]:
    provider, original = locate(request, kind, tail)
    if original.path.startswith(PREFIX + "/") or original.path == PREFIX:
        return web.Response(status=200), "own_page"  # the outpost's own pages need no login
    if signed.marked(original.path_qs):  # the hot path pays one substring test
        signed_answer(request, provider, original.url, answer_401=kind == "nginx")
    session = await authenticate(request, provider)
    if session is not None:
        outpost = outpost_of(request)
        headers = identity.headers(
            provider, session, outpost.options.outpost_name, outpost.options.version
        )
        return web.Response(status=200, headers=headers), "authenticated"
    if provider.skipped(original.path, original.url):
        return web.Response(status=200), "skipped"
    return unauthenticated(request, provider, original, answer_401=kind == "nginx"), ""


async def traefik(request: web.Request) -> web.StreamResponse:
    return await _check(request, "traefik")


async def caddy(request: web.Request) -> web.StreamResponse:
    return await _check(request, "caddy")


async def nginx(request: web.Request) -> web.StreamResponse:
    return await _check(request, "nginx")


async def envoy(request: web.Request) -> web.StreamResponse:
    return await _check(request, "envoy", request.match_info.get("tail", ""))


async def ping(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


# start, callback, sign_out --------------------------------------------------------------------


def checked_redirect(provider: Provider, rd: str) -> str | None:
    """`rd` when it stays where this provider's session is good, else None.

    # SECURITY: open redirects. forward_single and proxy: the external host itself, or a path
    # on it; forward_domain: a host under cookie_domain. Only http(s), no user info.
    """
    if not rd or len(rd) > forwarded.MAX_URI or any(ord(c) < 0x21 or ord(c) == 0x7F for c in rd):
        return None
    if rd.startswith("/") and not rd.startswith(("//", "/\\")):
        return provider.base_url + rd
    try:
        parts = urllib.parse.urlsplit(rd)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username is not None or "\\" in rd:
        return None
    host = forwarded.normal_host(parts.netloc, parts.scheme)
    if host is None:
        return None
    return rd if provider.covers(host) else None


def _binding_name(provider: Provider) -> str:
    return provider.cookie_name + BIND_SUFFIX


def _rd(request: web.Request) -> str:
    """The `rd` parameter. nginx's `error_page` (authentik's guide: `start?rd=$scheme://
    $http_host$request_uri`) does not encode it, so an original URL's own query arrives as more
    parameters of `start`: a bare absolute `rd` is then the whole rest of the query, as sent."""
    raw = request.rel_url.raw_query_string
    split = any(key != "rd" for key in request.query)
    if split and raw.startswith(("rd=http://", "rd=https://")) and "&rd=" not in raw:
        return raw[3:]
    return request.query.get("rd", "")


async def start(request: web.Request) -> web.StreamResponse:
    provider, _original = locate(request, "direct")
    rd = _rd(request) or provider.base_url + "/"
    target = checked_redirect(provider, rd)
    if target is None:
        raise pages.problem(
            request,
            400,
            "Bad redirect",
            "The rd parameter must be a URL this application protects.",
        )
    signed_answer(request, provider, target)
    if not outpost_of(request).core_online():
        raise pages.problem(
            request,
            503,
            "Identity provider unavailable",
            "Logging in is not possible while the identity provider is unreachable; "
            "try again in a moment.",
            retry=provider.start_url(target),
        )
    binding = request.cookies.get(_binding_name(provider), "")
    fresh = not (16 <= len(binding) <= 64 and binding.isascii() and binding.isalnum())
    if fresh:
        binding = secrets.token_hex(24)
    state = sealing.new_state(target, binding)
    query = {
        "client_id": provider.client_id,
        "redirect_uri": provider.redirect_uri,
        "response_type": "code",
        "scope": provider.scopes,
        "state": sealing.encode_state(provider.state_key, state),
        "nonce": state.nonce,
    }
    joiner = "&" if "?" in provider.endpoints.authorize else "?"
    response = web.HTTPFound(provider.endpoints.authorize + joiner + urllib.parse.urlencode(query))
    if fresh:
        # One binding per browser, kept across logins: several tabs may log in at once.
        response.set_cookie(
            _binding_name(provider),
            binding,
            path=PREFIX + "/",
            httponly=True,
            secure=provider.secure,
            samesite="Lax",
        )
    raise response


def _param(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    return value if len(value) <= MAX_PARAM else ""


async def callback(request: web.Request) -> web.StreamResponse:
    provider, _original = locate(request, "direct")
    outpost = outpost_of(request)
    error = _param(request, "error")
    if error:
        raise pages.problem(
            request, 403, "Login refused", f"The identity provider answered: {error[:200]}"
        )
    state = _state(request, provider)
    try:
        tokens = await outpost.core.exchange_code(
            provider, _param(request, "code"), _issued_for(request, provider)
        )
        claims = await outpost.core.verify(provider, tokens.access_token)
        if not tokens.id_token:
            raise oidc.Refused("no ID token came with the access token")
        id_claims = await outpost.core.verify(provider, tokens.id_token, nonce=state.nonce)
        if id_claims.get("sub") != claims.get("sub"):
            raise oidc.Refused("the ID token and the access token name different users")
    except oidc.Refused as exc:
        raise pages.problem(
            request, 400, "Login failed", str(exc), retry=provider.start_url(state.redirect)
        ) from None
    except oidc.CoreUnavailable:
        raise pages.problem(
            request,
            503,
            "Identity provider unavailable",
            "The login cannot be completed while the identity provider is unreachable; "
            "try again in a moment.",
            retry=provider.start_url(state.redirect),
        ) from None
    session = Session.of_token(tokens.access_token, claims)
    sealed = sealing.seal(provider.session_key, provider.cookie_name, {"t": tokens.access_token})
    try:
        cookies = sealing.split(provider.cookie_name, sealed)
    except ValueError:
        raise pages.problem(
            request,
            400,
            "Session too large",
            "This account's claims do not fit in cookies; ask an administrator to trim "
            "the attributes passed to this application.",
        ) from None
    outpost.sessions.created(provider, sealed, session)
    # checked at start; again here, in case the provider changed meanwhile
    response = web.HTTPFound(checked_redirect(provider, state.redirect) or provider.base_url + "/")
    set_session(request, response, provider, cookies, max(1, int(session.exp - time.time())))
    raise response


def _issued_for(request: web.Request, provider: Provider) -> str:
    """The redirect URI the code was issued for: the external host's own (when `signed` sent
    the callback here from there), else this endpoint."""
    if _param(request, "redirect_uri") == provider.root_redirect_uri:
        return provider.root_redirect_uri
    return provider.redirect_uri


def _state(request: web.Request, provider: Provider) -> sealing.State:
    """The login state: signed by this provider, unexpired, made for this browser, unused.

    # SECURITY: the binding cookie stops login CSRF (a state and code made in an attacker's
    # browser do not complete in the victim's); single use in this process, and the core's
    # codes are single-use everywhere.
    """
    outpost = outpost_of(request)
    try:
        state = sealing.decode_state(provider.state_key, _param(request, "state"))
    except sealing.Unreadable as exc:
        raise pages.problem(
            request,
            400,
            "Login expired or invalid",
            f"The login state is not valid ({exc}).",
            retry=provider.start_url(provider.base_url + "/"),
        ) from None
    binding = request.cookies.get(_binding_name(provider), "")
    if not binding or not secrets.compare_digest(sealing.binding_hash(binding), state.binding):
        raise pages.problem(
            request,
            400,
            "Login started in another browser",
            "This login was not started in this browser.",
            retry=provider.start_url(state.redirect),
        )
    if not outpost.use_state(state.nonce, state.expires):
        raise pages.problem(
            request,
            400,
            "Login already completed",
            "This login link was already used.",
            retry=provider.start_url(state.redirect),
        )
    return state


def set_session(
    request: web.Request,
    response: web.StreamResponse,
    provider: Provider,
    cookies: dict[str, str],
    max_age: int,
) -> None:
    """Set the session's cookies, and expire the request's chunks it no longer uses."""
    domain = provider.cookie_domain or None
    for name in sealing.chunk_names(provider.cookie_name):
        if name in cookies:
            response.set_cookie(
                name,
                cookies[name],
                max_age=max_age,
                domain=domain,
                path="/",
                secure=provider.secure,
                httponly=True,
                samesite="Lax",
            )
        elif name in request.cookies or name == provider.cookie_name:
            response.del_cookie(name, domain=domain, path="/")


async def sign_out(request: web.Request) -> web.StreamResponse:
    provider, _original = locate(request, "direct")
    raise ended(request, provider)


def ended(request: web.Request, provider: Provider) -> web.HTTPException:
    """The sign-out: this browser's session ends here at once, its cookies are expired, and
    the browser goes to the core's end-session, which ends the core session; that session's
    SESSION_END then ends it on every replica and outpost, whichever provider it was for."""
    outpost = outpost_of(request)
    sealed = sealing.join(provider.cookie_name, request.cookies)
    session = outpost.sessions.open(provider, sealed) if sealed else None
    if session is not None:
        # At once on this replica; the core's end-session ends the core session, whose
        # SESSION_END reaches every other replica.
        outpost.sessions.end(session.sid)
    query = urllib.parse.urlencode({"client_id": provider.client_id})
    joiner = "&" if "?" in provider.endpoints.end_session else "?"
    response = web.HTTPFound(provider.endpoints.end_session + joiner + query)
    set_session(request, response, provider, {}, 0)
    return response


def add_routes(app: web.Application, prefix: str = PREFIX) -> None:
    # any method: a proxy may send the original request's method with the check
    app.router.add_route("*", prefix + "/auth/traefik", traefik)
    app.router.add_route("*", prefix + "/auth/caddy", caddy)
    app.router.add_route("*", prefix + "/auth/nginx", nginx)
    app.router.add_route("*", prefix + "/auth/envoy{tail:(/.*)?}", envoy)
    app.router.add_get(prefix + "/start", start)
    app.router.add_get(prefix + "/callback", callback)
    app.router.add_get(prefix + "/sign_out", sign_out)
    app.router.add_route("*", prefix + "/ping", ping)
