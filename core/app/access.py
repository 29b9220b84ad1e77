"""The access log: one structured line per request, and the request id bound to every line.

`middleware` is the application's outermost middleware. It takes the caller's `X-Request-ID`
when it is a safe token (a proxy's or a load balancer's id, so one request can be followed
across them), else makes one; binds it as `request_id` in structlog's context variables, so
every line logged while serving the request carries it (and the audit events' `http_request`,
and a 500's body); returns it in the response's `X-Request-ID`; and logs `request` with the
method, the route's pattern, the status, the duration in milliseconds and the user when known.

# SECURITY: the route's pattern is logged, never the path or the query string: paths and
# queries carry authorization codes, recovery keys, tokens and states.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time

import structlog
from aiohttp import web

from tessera.core import logs
from tessera.core.api import http, state

HEADER = "X-Request-ID"
MAX_LENGTH = 128
# SECURITY: a caller's id reaches logs and headers; letters, digits and a few marks only, so it
# cannot forge log lines, split headers or smuggle markup.
_SAFE = re.compile(rf"[A-Za-z0-9._:+=/-]{{1,{MAX_LENGTH}}}")
_QUIET_ROUTES = frozenset({"/-/health/live/", "/-/health/ready/"})  # probes: debug level
_HOT_PREFIXES = (
    "/outpost.goauthentik.io/auth/",
    "/application/o/token/",
    "/application/o/userinfo/",
    "/application/o/introspect/",
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

log = structlog.get_logger("tessera.access")


# New ids: this process's random prefix and a counter. Unique across processes and restarts
# without a system call per request (an id names a request; it is not a secret).
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def request_id(request: web.BaseRequest) -> str:
    """The caller's `X-Request-ID` when it is safe, else a new one."""
    given = request.headers.get(HEADER)
    if given is not None and _SAFE.fullmatch(given):
        return given
    return f"{_PREFIX}{next(_COUNTER):016x}"


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _user(request: web.BaseRequest) -> str | None:
    principal = request.get(state.PRINCIPAL)
    return str(principal.user["username"]) if principal is not None else None


@web.middleware
async def middleware(request: web.Request, handler: http.Handler) -> web.StreamResponse:
    rid = request_id(request)
    started = time.perf_counter()
    status = 500
    bound = structlog.contextvars.bind_contextvars(request_id=rid)
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[HEADER] = rid
        return response
    except web.HTTPException as exc:  # redirects and errors raised as responses
        status = exc.status
        exc.headers[HEADER] = rid
        raise
    finally:
        _log(request, status, time.perf_counter() - started)
        structlog.contextvars.reset_contextvars(**bound)


def _level(route: str, status: int) -> int:
    """Probes at debug; the hot paths' successes (forward-auth checks, tokens, userinfo,
    introspection: thousands a second, each line costing a tenth of the request) at debug;
    everything else, and every failure, at info."""
    if route in _QUIET_ROUTES or (status < 400 and route.startswith(_HOT_PREFIXES)):
        return logging.DEBUG
    return logging.INFO


def _log(request: web.Request, status: int, seconds: float) -> None:
    logged(request, route_of(request), status, seconds)


def logged(request: web.BaseRequest, route: str, status: int, seconds: float) -> None:
    """The access line of a request served on `route` (also for an answer given in front of
    the router: `embedded.hot_path`)."""
    level = _level(route, status)
    if not logs.enabled(level):
        return
    fields = {
        "method": request.method if request.method in _METHODS else "other",
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "user": _user(request),
    }
    # The JSON line is written directly where it can be (`logs.write_direct`): the hot paths
    # would otherwise spend as long logging a request as serving it.
    if not logs.write_direct(level, "request", fields):
        log.log(level, "request", **fields)
