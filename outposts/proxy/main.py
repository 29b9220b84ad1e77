"""`tessera outpost proxy`: the standalone proxy outpost on `outposts.common`'s runtime.

`run` hands `serve` to `entry.main`, which loads the settings, starts the runtime (the outpost
found by its token, its provider configs fetched, the control channel open) and serves metrics.
`serve` builds the `Outpost` from the runtime's snapshot, keeps it current (configs changed,
sessions ended, control channel reconnected) and listens on `AUTHENTIK_LISTEN__HTTP` until
told to stop.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import prometheus_client
import structlog
from aiohttp import web

from tessera.outposts.common import entry, runtime, settings
from tessera.outposts.proxy import app, forwarded, tls
from tessera.outposts.proxy.outpost import DEFAULT_TRUSTED, DEFAULT_TRUSTED_V6, Options, Outpost

log = structlog.get_logger(__name__)
# On SIGTERM, requests in flight (and proxied websockets) get this long before they are cut:
# well inside Kubernetes' default grace period of 30 s.
SHUTDOWN_TIMEOUT = 5.0
TRUSTED_KEYS = ("TESSERA_LISTEN__TRUSTED_PROXY_CIDRS", "AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS")


def run(argv: list[str]) -> int:
    return entry.main("proxy", argv, serve, fetch_extras=tls.fetch_certificates)


def trusted_cidrs(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """`AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS`: a JSON list or comma-separated CIDRs (as the
    core reads it); the core's default when unset. Raises ValueError naming a bad one."""
    env = os.environ if environ is None else environ
    raw = next((env[k] for k in TRUSTED_KEYS if env.get(k, "").strip()), "")
    if not raw:
        return DEFAULT_TRUSTED + DEFAULT_TRUSTED_V6
    text = raw.strip()
    values = json.loads(text) if text.startswith("[") else text.split(",")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS: a list of CIDRs")
    cidrs = tuple(v.strip() for v in values if v.strip())
    forwarded.networks(cidrs)
    return cidrs


def options_of(ctx: entry.Context) -> Options:
    return Options(
        outpost_name=ctx.runtime.snapshot.outpost.name,
        version=ctx.runtime.version,
        core_host=ctx.settings.host,
        core_browser_host=ctx.settings.host_browser,
        insecure=ctx.settings.insecure,
        trusted_proxies=trusted_cidrs(),
    )


def instrument(ctx: entry.Context, outpost: Outpost) -> None:
    """The outpost's own metrics beside the runtime's, on the metrics port."""
    registry = ctx.metrics.registry
    checks = prometheus_client.Counter(
        "tessera_outpost_proxy_checks",
        "Forward-auth checks by outcome (authenticated, skipped, own_page, redirected, "
        "unauthorized, unavailable, refused)",
        ["outcome"],
        registry=registry,
    )
    children: dict[str, Any] = {}

    def observe(outcome: str) -> None:
        child = children.get(outcome)
        if child is None:
            child = children[outcome] = checks.labels(outcome=outcome)
        child.inc()

    outpost.observe = observe
    prometheus_client.Gauge(
        "tessera_outpost_proxy_sessions", "Opened sessions held in memory", registry=registry
    ).set_function(lambda: len(outpost.sessions))
    prometheus_client.Gauge(
        "tessera_outpost_proxy_providers", "Providers served", registry=registry
    ).set_function(lambda: len(outpost.registry.providers))


class CoreState:
    """Whether the core is reachable, as the control channel tells: down once the channel has
    been closed for `GRACE` seconds (a start-up or a brief reconnection is not an outage)."""

    GRACE = 5.0

    def __init__(self, rt: runtime.Runtime) -> None:
        self.rt = rt
        self.down_since: float | None = None

    def __call__(self) -> bool:
        if self.rt.connected:
            self.down_since = None
            return True
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
        return now - self.down_since < self.GRACE


async def _start_https(runner: web.AppRunner, address: str, certificates: tls.Certificates) -> None:
    """The HTTPS listener; one that cannot bind is logged and left out (plain HTTP, what reverse
    proxies use, keeps working)."""
    host, port = settings.split_address(address)
    try:
        await web.TCPSite(
            runner, host, port, reuse_address=True, ssl_context=certificates.context
        ).start()
    except OSError as exc:
        log.warning("proxy_https_unavailable", address=address, reason=exc.strerror or str(exc))


async def serve(ctx: entry.Context) -> None:
    rt = ctx.runtime
    outpost = Outpost(options_of(ctx), core_online=CoreState(rt))
    refused = outpost.update(rt.snapshot.providers)
    log.info("proxy_providers", served=len(outpost.registry.providers), refused=refused)
    instrument(ctx, outpost)

    certificates = tls.Certificates()
    certificates.update(outpost.registry.providers, rt.snapshot.extras.get("certificates", {}))

    async def on_config(snapshot: runtime.Snapshot) -> None:
        refused = outpost.update(snapshot.providers)
        certificates.update(outpost.registry.providers, snapshot.extras.get("certificates", {}))
        log.info("proxy_providers", served=len(outpost.registry.providers), refused=refused)

    async def on_session_end(session_id: str) -> None:
        outpost.session_ended(session_id)

    async def on_connected() -> None:
        outpost.reconnected()  # SESSION_END may have been missed while disconnected

    rt.on_config(on_config)
    rt.on_session_end(on_session_end)
    rt.on_connected(on_connected)
    runner = web.AppRunner(
        app.create_app(outpost),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        **app.SERVER_LIMITS,
    )
    await runner.setup()
    app.hot_path(runner)
    try:
        host, port = settings.split_address(ctx.settings.listen.http)
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        await _start_https(runner, ctx.settings.listen.https, certificates)
        log.info(
            "proxy_outpost_listening",
            http=ctx.settings.listen.http,
            https=ctx.settings.listen.https,
            providers=len(outpost.registry.providers),
        )
        await ctx.stopping.wait()
    finally:
        await runner.cleanup()
