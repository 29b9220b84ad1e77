"""The aiohttp applications of the proxy outpost, standalone or inside the core.

`create_app(outpost)` is the standalone outpost's whole application: the endpoints under
`/outpost.goauthentik.io/`, proxy mode for requests to a `proxy`-mode provider's host, and a 404
for any other request. The core's embedded outpost serves the same thing in its own application:
it mounts `endpoints(outpost)` with `app.add_subapp(providers.PREFIX, ...)` and adds
`proxy_middleware(outpost)` to its middlewares (requests to a proxy-mode host never reach the
core's own routes). Either way the outpost's lifetime is the application's when `owned`, and
authenticated checks are answered in front of the router (`hotpath`: `hot_path` here, the core's
`embedded.hot_path` there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from tessera.outposts.proxy import forwarded, handlers, hotpath, pages, reverse, signed
from tessera.outposts.proxy.outpost import Outpost
from tessera.outposts.proxy.providers import PREFIX

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Passed to `web.AppRunner`: a session may span several cookies (`sealing.MAX_CHUNKS`), more
# than aiohttp's default 8190 bytes for one header line.
SERVER_LIMITS: dict[str, Any] = {"max_field_size": 32 * 1024, "max_line_size": 16 * 1024}


def endpoints(outpost: Outpost) -> web.Application:
    """The `/outpost.goauthentik.io/*` endpoints, to mount at `PREFIX` with `add_subapp`."""
    sub = web.Application()
    sub[handlers.OUTPOST] = outpost
    handlers.add_routes(sub, prefix="")
    return sub


def proxy_middleware(outpost: Outpost) -> Any:
    """Sends requests for a proxy-mode provider's host (outside `PREFIX`) to its upstream, and
    a request on any path of a provider's host that carries the callback or the logout
    signature to that (`signed`)."""

    @web.middleware
    async def route(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return await handler(request)
        marked = signed.marked(request.rel_url.raw_query_string)
        if not (marked or outpost.registry.has_proxied):
            return await handler(request)
        believe = forwarded.trusted(request, outpost.networks)
        try:
            original = forwarded.original(request, "direct", believe)
        except forwarded.BadForwarding:
            return await handler(request)  # names no provider's host: not the outpost's to answer
        provider = outpost.registry.proxied(original.host)
        if provider is not None:
            request[handlers.REQUEST_OUTPOST] = outpost
            return await reverse.serve(request, provider, original)
        provider = outpost.registry.owner(original.host) if marked else None
        if provider is not None:
            request[handlers.REQUEST_OUTPOST] = outpost
            handlers.signed_answer(request, provider, original.url)
        return await handler(request)

    return route


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The standalone outpost's edge: an unexpected error is a logged 500, the process lives."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # the edge: anything else is a bug, logged with the request
        log.exception("proxy_outpost_error", path=request.path[:200], method=request.method)
        raise pages.problem(
            request, 500, "Internal error", "The outpost failed; see its log."
        ) from None


async def _no_app(request: web.Request) -> web.StreamResponse:
    raise pages.problem(
        request,
        404,
        "no app for hostname",
        "No provider of this outpost serves this host and path.",
    )


def hot_path(runner: web.AppRunner) -> None:
    """Answer authenticated checks in front of the router (`hotpath`) on a runner of
    `create_app`'s application, once set up."""
    outpost = runner.app[handlers.OUTPOST]
    if runner.server is None:
        raise RuntimeError("the runner is not set up")
    hotpath.install(runner.server, lambda _request: outpost)


def create_app(outpost: Outpost, *, owned: bool = True) -> web.Application:
    """The standalone outpost's application (client_max_size bounds request bodies only of the
    outpost's own endpoints; proxy mode streams bodies through)."""
    app = web.Application(middlewares=[_guard, proxy_middleware(outpost)])
    app[handlers.OUTPOST] = outpost
    handlers.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", _no_app)
    if owned:

        async def close(_app: web.Application) -> None:
            await outpost.close()

        app.on_cleanup.append(close)
    return app
