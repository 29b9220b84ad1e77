"""The embedded outpost: the core itself serves `/outpost.goauthentik.io/*` (authentik's
"authentik Embedded Outpost", managed `goauthentik.io/outposts/embedded`).

The proxy outpost's code (`tessera.outposts.proxy`) runs inside each serving process: its
endpoints are routes of the core's application, and `middleware` hands each request under
`PREFIX` the `Outpost` that serves it, and requests for a proxy-mode provider's external host to
its reverse proxy (the core's own host is never taken). What the standalone outpost learns over
HTTP and the control channel comes from inside the process here:

- provider configs are read from the store (`providers.proxy.configs`), at start and whenever
  the outpost hub announces a change (`Hub.watch`: this process's commits, and the other
  processes' and replicas' through the bus), debounced, off the request path;
- a session ended at the core (`identity.sessions.ENDED`, the hub's SESSION_END) is ended in the
  shared `Sessions` at once, on every serving process;
- the OAuth2 back channel (code exchange, introspection, key set) goes to this server's own
  listening socket, with the browser-facing host as `Host` so the issuer is the one the
  browser saw.

The browser-facing base of the core's endpoints is the outpost's `config.authentik_host`, or,
when it is empty, the request's public base (`api.net.public_base`: the configured public URL,
else the request's host). One `Outpost` is kept per base, at most MAX_BASES, least recently used
dropped: a client cycling `Host` headers costs a few dictionary entries, never more state. The
providers are compiled once per config read and copied per base with that base's endpoints; all
bases share one `Sessions` (a cookie opened under one base is known under another), one used-state
record, and the HTTP clients of the back channel and of proxy mode, so a dropped `Outpost` owns
nothing to close. The hot path (a check with a cookie seen before) reads only memory.

`AUTHENTIK_OUTPOSTS__DISABLE_EMBEDDED_OUTPOST=true`: `setup` adds nothing; the core neither
serves `/outpost.goauthentik.io/*` (unknown paths, 404) nor keeps the managed outpost
(`providers.proxy` deletes it at start, as authentik does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic
import structlog
from aiohttp import web

from tessera.core import config, crypto, store, wire
from tessera.core.api import net, state
from tessera.core.api.admin import AUTHENTIK_VERSION
from tessera.core.app import access, metrics
from tessera.core.identity import outposts
from tessera.core.outpost_hub import HUB
from tessera.core.providers.proxy import configs as proxy_configs
from tessera.core.store import crud
from tessera.outposts import proxy
from tessera.outposts.proxy import (
    forwarded,
    handlers,
    hotpath,
    machine,
    oidc,
    providers,
    sessions,
    signed,
)
from tessera.outposts.proxy import outpost as proxy_outpost

log = structlog.get_logger(__name__)
PREFIX = proxy.PREFIX
MAX_BASES = 16  # browser-facing bases served at once (each an `Outpost`); least recent goes
REFRESH = 60.0  # configs are also reread this often, whatever the hub says
PLACEHOLDER = "http://embedded.invalid"
# a browser-facing base: scheme and host[:port] (docker service names may hold `_`)
_BASE = re.compile(r"https?://(?:[A-Za-z0-9._\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# For the core's `web.AppRunner`: a proxy session may span several cookies, more than aiohttp's
# default 8190 bytes for one header line (the standalone outpost's limits).
SERVER_LIMITS: dict[str, Any] = dict(proxy.app.SERVER_LIMITS)


class LoopbackCore(oidc.Core):
    """The core's endpoints on this server's own socket. Besides the browser host as `Host`, an
    https base is told with `X-Forwarded-Proto` (the peer is this server, a trusted proxy by
    default), so the core issues the tokens under the issuer the browser saw. The HTTP client
    is the embedded outpost's (`Embedded.http`), shared by every base."""

    def __init__(self, host: str, browser_base: str, http: Callable[[], Any]) -> None:
        super().__init__(host, browser_base, insecure=True)
        self.https = browser_base.startswith("https://")
        self._shared = http

    def _session(self) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession = self._shared()
        return session

    async def close(self) -> None:
        """Nothing of its own to close (`Embedded.close` closes the shared client)."""

    def _target(self, url: str) -> tuple[str, dict[str, str]]:
        target, headers = super()._target(url)
        if self.https:
            headers = {**headers, "X-Forwarded-Proto": "https"}
        return target, headers


@dataclass
class _Served:
    outpost: proxy.Outpost
    route: Any  # `proxy.proxy_middleware(outpost)`


class Embedded:
    """The embedded outpost of one serving process."""

    def __init__(self, db: store.Store, keyring: crypto.Keyring, settings: config.Settings):
        self.db = db
        self.keyring = keyring
        self.settings = settings
        self.name = outposts.EMBEDDED_NAME
        self.authentik_host = ""
        self.providers: tuple[providers.Provider, ...] = ()  # under PLACEHOLDER's endpoints
        self.registry = providers.Registry(())  # which hosts are the outpost's
        self.has_proxied = False
        self.sessions = sessions.Sessions(self._introspect)
        self.networks = forwarded.networks(settings.listen.trusted_proxy_cidrs)
        self.core_host = ""  # this server's socket, from the first request
        self.generation = 0  # configs read so far (tests wait on it)
        self.made = 0  # `Outpost`s made so far, one per base newly seen (tests read it)
        self._served: collections.OrderedDict[str, _Served] = collections.OrderedDict()
        self._dirty = asyncio.Event()
        # Shared by every base's `Outpost`: the back channel's client, proxy mode's clients,
        # the record of used login states.
        self._http: aiohttp.ClientSession | None = None
        self._upstreams: dict[bool, aiohttp.ClientSession] = {}
        self._used_states: dict[str, float] = {}

    # Configs -----------------------------------------------------------------------------

    async def reload(self) -> None:
        """Read the embedded outpost and its providers' configs; serve them from now on."""
        async with self.db.read() as tx:
            row = await crud.find(tx, outposts.TABLE, managed=outposts.EMBEDDED_MANAGED)
            found: list[wire.outposts.ProxyOutpostConfig] = []
            if row is not None:
                rows = await proxy_configs.served_providers(tx, row["pk"])
                found = await proxy_configs.configs(tx, self.keyring, rows, PLACEHOLDER)
        host = _normal_base(str(((row or {}).get("config") or {}).get("authentik_host") or ""))
        name = str(row["name"]) if row is not None else self.name
        if host != self.authentik_host or name != self.name:
            self._served.clear()
        self.authentik_host, self.name = host, name
        built, _refused = proxy_outpost.build(found)  # each refusal is logged
        self.providers = tuple(built)
        self.registry = providers.Registry(built)
        self.has_proxied = self.registry.has_proxied
        for base, served in self._served.items():
            served.outpost.registry = self._registry_for(base)
        self.generation += 1
        log.debug("embedded_outpost_configs", providers=len(found), outpost=name)

    def _registry_for(self, base: str) -> providers.Registry:
        """The providers with the core's endpoints under `base`, and the issuer the core's
        token endpoint will write (its public URL when one is configured, else `base`)."""
        issuer_base = self.settings.web.public_url.rstrip("/") or base
        out = []
        for provider in self.providers:
            slug = provider.app_slug
            doc = proxy_configs.oidc_configuration(base, slug)
            endpoints = providers.Endpoints(
                issuer=f"{issuer_base}/application/o/{slug}/",
                authorize=doc.authorization_endpoint,
                token=doc.token_endpoint,
                end_session=doc.end_session_endpoint,
                introspect=doc.introspection_endpoint,
                jwks=doc.jwks_uri,
            )
            out.append(dataclasses.replace(provider, endpoints=endpoints))
        return providers.Registry(out)

    def names(self, request: web.Request) -> bool:
        """Whether the request's host (as a trusted proxy reports it) is one of the outpost's
        providers': only those requests outside PREFIX may become the outpost's."""
        believe = forwarded.trusted(request, self.networks)
        try:
            host = forwarded.host_of(request, believe)
        except forwarded.BadForwarding:
            return False
        return self.registry.owner(host) is not None

    def outposts_changed(self) -> None:
        """The hub's TRIGGER_UPDATE: reread soon (several changes make one read)."""
        self._dirty.set()

    def sessions_ended(self, digests: list[str]) -> None:
        """The hub's SESSION_END: these core sessions end here at once."""
        for digest in digests:
            self.sessions.end(digest)

    def resubscribed(self) -> None:
        """The hub's bus was lost: SESSION_END may have been missed, so every session is
        confirmed with the core once more (as the standalone outpost after a reconnection)."""
        self.sessions.reconnected()

    async def refreshing(self) -> None:
        """Reread the configs when told to, and every REFRESH seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.reload()
            except store.StoreUnavailable:
                log.warning("embedded_outpost_reload_failed", retry_in=1.0)
                await asyncio.sleep(1.0)
                self._dirty.set()
            except pydantic.ValidationError as exc:
                # a stored row the wire model refuses is a bug: the configs served so far stay
                log.error("embedded_outpost_config_invalid", error=str(exc)[:500])

    # Requests ----------------------------------------------------------------------------

    def base_of(self, request: web.BaseRequest) -> str:
        """Where browsers reach the core's endpoints, or a 400 for a host that is no URL.

        # SECURITY: the request's host picks an `Outpost` when `authentik_host` is empty: only
        # a plain scheme://host[:port] does, and at most MAX_BASES are kept (`served`).
        """
        base = self._base(request)
        if not self.authentik_host and not _BASE.fullmatch(base):
            raise web.HTTPBadRequest(text="The request's host is not a valid host name.")
        return base

    def _base(self, request: web.BaseRequest) -> str:
        if self.authentik_host:
            return self.authentik_host  # checked when read (`_normal_base`)
        return net.public_base_with(self.settings, request).rstrip("/")

    def served(self, request: web.BaseRequest) -> _Served:
        base = self._base(request)
        found = self._served.get(base)  # a base served is one checked before
        if found is not None:
            self._served.move_to_end(base)
            return found
        base = self.base_of(request)
        if not self.core_host:
            self.core_host = _local_url(request, self.settings)
        cidrs = tuple(self.settings.listen.trusted_proxy_cidrs)
        outpost = proxy.Outpost(_options(self.name, self.core_host, base, cidrs))
        # The back channel is this server; the sessions, the used states and the HTTP clients
        # are the process's, whichever base: the `Outpost` owns nothing that needs closing.
        outpost.core = LoopbackCore(self.core_host, base, self.http)
        outpost.sessions = self.sessions
        outpost.machine = machine.HeaderAuth(outpost.core, self.sessions)
        outpost.upstreams = self._upstreams
        outpost.used_states = self._used_states
        outpost.registry = self._registry_for(base)
        found = self._served[base] = _Served(outpost, proxy.proxy_middleware(outpost))
        self.made += 1
        while len(self._served) > MAX_BASES:
            self._served.popitem(last=False)
        return found

    def http(self) -> aiohttp.ClientSession:
        """The back channel's HTTP client (to this server's own socket)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=oidc.TIMEOUT,
                connector=aiohttp.TCPConnector(ssl=False, limit=64),
                headers={"User-Agent": "goauthentik.io/outpost/tessera"},
            )
        return self._http

    async def _introspect(self, provider: Any, token: str) -> bool:
        """The shared sessions' check with the core (any base: introspection has no issuer)."""
        if not self._served:
            raise oidc.CoreUnavailable("no request has reached the embedded outpost yet")
        newest = next(reversed(self._served.values()))
        return await newest.outpost.core.introspect(provider, token)

    # Life ---------------------------------------------------------------------------------

    async def close(self) -> None:
        self._served.clear()
        if self._http is not None:
            await self._http.close()
        for session in self._upstreams.values():
            await session.close()
        self._upstreams.clear()


def _options(name: str, core_host: str, base: str, cidrs: tuple[str, ...]) -> proxy.Options:
    return proxy.Options(
        outpost_name=name,
        version=AUTHENTIK_VERSION,
        core_host=core_host,
        core_browser_host=base,
        trusted_proxies=cidrs,
    )


def _normal_base(url: str) -> str:
    """`authentik_host` as scheme://host[:port]; "" (the request's base) when it is not one."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:
        parts = urllib.parse.urlsplit("")
    base = f"{parts.scheme.lower()}://{parts.netloc}" if parts.netloc else ""
    if url.strip() and not _BASE.fullmatch(base):
        log.warning("embedded_outpost_authentik_host_ignored", authentik_host=url[:200])
        return ""
    return base


def _local_url(request: web.BaseRequest, settings: config.Settings) -> str:
    """This server's own socket, as the request reached it (any serving process will do)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = str(sockname[0]), int(sockname[1])
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    host, _sep, listen_port = settings.listen.http.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{listen_port}"


EMBEDDED = web.AppKey("embedded_outpost", Embedded)


def _own_host(request: web.Request, embedded: Embedded) -> bool:
    """Whether the request is for the core's own host (never a proxy-mode provider's).

    # SECURITY: a proxy provider whose external host is the core's cannot take the core's
    # pages (its login, its API) over.
    """
    host = request.host.lower()
    for url in (embedded.authentik_host, embedded.settings.web.public_url):
        if url and urllib.parse.urlsplit(url).netloc.lower() == host:
            return True
    return False


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outpost's requests: its endpoints, proxy mode on a proxied provider's host, and the
    callback or logout signature on any path of a provider's host (`signed`)."""
    embedded = request.app.get(EMBEDDED)
    if embedded is None:
        return await handler(request)
    path = request.path
    if path == PREFIX or path.startswith(PREFIX + "/"):
        request[handlers.REQUEST_OUTPOST] = embedded.served(request).outpost
        return await handler(request)
    if not (embedded.has_proxied or signed.marked(request.rel_url.raw_query_string)):
        return await handler(request)
    if _own_host(request, embedded) or not embedded.names(request):
        return await handler(request)
    try:
        route: Any = embedded.served(request).route
    except web.HTTPBadRequest:
        return await handler(request)  # a host that is no URL is not a provider's
    response: web.StreamResponse = await route(request, handler)
    return response


async def _running(app: web.Application) -> AsyncIterator[None]:
    embedded = Embedded(app[state.STORE], app[state.KEYRING], app[state.SETTINGS])
    await embedded.reload()
    stop_watching = app[HUB].watch(embedded)
    refresher = asyncio.create_task(embedded.refreshing(), name="embedded-outpost-refresh")
    app[EMBEDDED] = embedded
    try:
        yield
    finally:
        stop_watching()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await embedded.close()


def hot_path(server: web.Server, app: web.Application, app_metrics: metrics.Metrics) -> None:
    """Authenticated checks answered in front of the core's router (`proxy.hotpath`), once
    `app` has started (its `Embedded` exists). The middlewares those answers skip are done
    here for them: the request id, the request metrics and the access line."""
    embedded = app.get(EMBEDDED)
    if embedded is None:
        return  # disabled: the paths are the router's 404s

    def outpost_of(request: web.BaseRequest) -> proxy.Outpost | None:
        try:
            return embedded.served(request).outpost
        except web.HTTPBadRequest:
            return None  # a host that is no URL: the application answers it

    def record(request: web.BaseRequest, route: str, status: int, seconds: float) -> None:
        app_metrics.observe(route, request.method, status, seconds)
        access.logged(request, route, status, seconds)

    def answered(
        request: web.BaseRequest, response: web.Response, route: str, seconds: float
    ) -> None:
        response.headers[access.HEADER] = access.request_id(request)
        # counted and logged once the answer is on its way: off the check's latency
        loop.call_soon(record, request, route, response.status, seconds)

    loop = asyncio.get_running_loop()

    hotpath.install(server, outpost_of, answered)


def setup(app: web.Application) -> None:
    """Serve the embedded outpost from `app`: after the hub's cleanup context (it watches the
    hub), with `middleware` among the app's middlewares. Nothing when it is disabled."""
    if app[state.SETTINGS].outposts.disable_embedded_outpost:
        log.info("embedded_outpost_disabled")
        return
    app.cleanup_ctx.append(_running)
    handlers.add_routes(app)
