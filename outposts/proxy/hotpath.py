"""The forward-auth check's hot path: an authenticated check answered in front of the router.

Every request to every protected application is a check, and nearly all of them carry a session
cookie this process has opened and confirmed before. Through the application such a check pays
for routing, each middleware's coroutine, and the handler's exception-driven control flow, which
together cost about as much as the check itself. `answer` serves exactly that case from memory,
synchronously; any other case (no cookie, a session still to confirm with the core, a callback
or logout signature, a page of the outpost's own, anything that would be an error) makes it
return None, and the request then goes the whole way through the application, which answers it
as it always did, from the start. The hot path therefore decides nothing the application would
not: it only skips the way there when the answer is the one success.

`install` puts it in front of a served application (`web.Server.request_handler`, after
`AppRunner.setup`): the standalone outpost's (`main`), and the core's for its embedded outpost
(`core.app.embedded`), whose middlewares' duties (request id, metrics, the access line) the core
does for these answers itself (`on_answer`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from tessera.outposts.proxy import forwarded, identity, sealing, signed
from tessera.outposts.proxy.outpost import Outpost
from tessera.outposts.proxy.providers import PREFIX

log = structlog.get_logger(__name__)
# The checks a reverse proxy sends; Envoy's carries the original path after its own.
CHECKS = {
    PREFIX + "/auth/traefik": "traefik",
    PREFIX + "/auth/caddy": "caddy",
    PREFIX + "/auth/nginx": "nginx",
}
ENVOY = PREFIX + "/auth/envoy"
# The route each kind of check is served on by the application (metrics and logs name routes).
ROUTES = {kind: path for path, kind in CHECKS.items()} | {"envoy": ENVOY + "{tail}"}
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
Answered = Callable[[web.BaseRequest, web.Response, str, float], None]


def check_of(path: str) -> tuple[str, str] | None:
    """The kind of check a request path is, and Envoy's original path; None for any other."""
    kind = CHECKS.get(path)
    if kind is not None:
        return kind, ""
    if path.startswith(ENVOY):
        tail = path[len(ENVOY) :]
        if not tail or tail.startswith("/"):
            return "envoy", tail
    return None


def answer(
    request: web.BaseRequest, outpost: Outpost, kind: str, tail: str = ""
) -> web.Response | None:
    """The 200 with the identity headers for an authenticated check, when memory alone knows
    it is one; None for everything else (the application answers those)."""
    believe = forwarded.trusted(request, outpost.networks)
    if not believe and kind != "envoy":
        return None  # only a trusted proxy's forwarded headers say what it is about: a 400
    try:
        original = forwarded.original(request, kind, believe, tail)
    except forwarded.BadForwarding:
        return None
    provider = outpost.registry.lookup(original.host)
    path_qs = original.path_qs
    if provider is None or path_qs.startswith(PREFIX) or signed.marked(path_qs):
        return None
    cookies = sealing.parse_cookies(request.headers.get("Cookie"), provider.cookie_name)
    sealed = sealing.join(provider.cookie_name, cookies)
    if sealed is None:
        return None
    session = outpost.sessions.open(provider, sealed)
    if session is None or not outpost.sessions.confirmed_now(session):
        return None
    headers = identity.headers(
        provider, session, outpost.options.outpost_name, outpost.options.version
    )
    outpost.observe("authenticated")
    return web.Response(headers=headers)


def install(
    server: web.Server,
    outpost_of: Callable[[web.BaseRequest], Outpost | None],
    on_answer: Answered | None = None,
) -> None:
    """Answer authenticated checks in front of `server`'s application. `outpost_of` picks the
    outpost a check is for (None: the application's way); `on_answer(request, response, route,
    seconds)` is told each answer given here, with the application's route of the check."""
    application: RequestHandler = server.request_handler

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        check = check_of(path)
        if check is not None:
            started = time.perf_counter()
            try:
                outpost = outpost_of(request)
                response = answer(request, outpost, *check) if outpost is not None else None
            except Exception:  # a bug here must not be the answer: the application decides
                # SECURITY: the route, never the path (an original path may carry secrets)
                log.exception("forward_auth_hot_path_failed", route=ROUTES[check[0]])
                response = None
            if response is not None:
                if on_answer is not None:
                    route = ROUTES[check[0]]
                    on_answer(request, response, route, time.perf_counter() - started)
                return response
        return await application(request)

    server.request_handler = handle
