"""The aiohttp application factory and the `server` and `worker` process loops.

`create_app` wires the store, cache and keyring (owned by cleanup contexts), the error and metrics
middlewares, the admin API, the health endpoints and the recovery links. `serve` runs the HTTP and
metrics listeners; `work` runs the maintenance scheduler alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from aiohttp import web

from tessera.core import (
    cache,
    config,
    crypto,
    events,
    flows,
    identity,
    outpost_hub,
    stages,
    store,
    tasks,
    wire,
)
from tessera.core import web as web_pages
from tessera.core.api import admin, http, openapi, resource, resources, root, state
from tessera.core.api import flows as flows_api
from tessera.core.app import access, backends, embedded, health, metrics, startup
from tessera.core.policies import pool
from tessera.core.providers import ldap, oauth2, proxy, saml
from tessera.core.sources import ldap as ldap_source
from tessera.core.web import errorpages

log = structlog.get_logger(__name__)
METRICS = web.AppKey("metrics", metrics.Metrics)


def _keyring(settings: config.Settings) -> crypto.Keyring:
    assert settings.secret_key is not None
    return crypto.Keyring(settings.secret_key.get_secret_value())


async def prepare(settings: config.Settings) -> store.Store:
    """Open the store, apply migrations and run the bootstrap; the store is left open."""
    startup.announce(settings)
    db = store.Store(settings)
    await db.open()
    await db.migrate()
    async with db.transaction() as tx:
        outcome = await identity.bootstrap.run(
            tx,
            _keyring(settings),
            password=_reveal(settings.bootstrap_password),
            token=_reveal(settings.bootstrap_token),
            email=settings.bootstrap_email,
        )
        if outcome.replaced_token is not None:
            await _record_squatter(tx, settings, outcome.replaced_token)
        await flows.defaults.ensure(tx)
    if outcome.needs_setup:
        base = settings.web.public_url.rstrip("/") or f"http://{settings.listen.http}"
        log.info("initial setup", url=f"{base}/if/flow/initial-setup/")
        print(f"Initial setup: {base}/if/flow/initial-setup/", flush=True)
    return db


async def _record_squatter(
    tx: store.Tx, settings: config.Settings, replaced: dict[str, Any]
) -> None:
    """Audit the bootstrap's replacing a token that had taken its identifier (the log too)."""
    log.warning("bootstrap token replaced", owner=replaced["user_pk"], intent=replaced["intent"])
    await events.record(
        tx,
        "suspicious_request",
        user=None,
        client_ip=None,
        context={
            "reason": "a token held the bootstrap token's identifier; it was replaced",
            "identifier": identity.bootstrap.BOOTSTRAP_TOKEN_ID,
            "replaced": replaced,
        },
        retention=dt.timedelta(days=settings.events.retention_days),
        app="tessera.core.identity.bootstrap",
    )


def _reveal(secret: Any) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def create_app(
    settings: config.Settings, db: store.Store, *, run_tasks: bool = True
) -> web.Application:
    crypto.passwords.configure(**settings.password_hashing.model_dump())
    app_metrics = metrics.Metrics(db)
    app = web.Application(
        middlewares=[
            access.middleware,
            app_metrics.middleware(),
            errorpages.middleware,  # pages for browsers, JSON for the rest
            http.error_middleware,
            embedded.middleware,
        ],
        client_max_size=settings.web.max_body_bytes,
    )
    app[state.SETTINGS] = settings
    app[state.STORE] = db
    app[state.KEYRING] = _keyring(settings)
    app[METRICS] = app_metrics
    app.cleanup_ctx.append(_cache_ctx)
    app.cleanup_ctx.append(_config_bus_ctx)
    app.cleanup_ctx.append(_expression_pool_ctx)
    if run_tasks and settings.worker.embedded:
        app.cleanup_ctx.append(_scheduler_ctx)
    app.cleanup_ctx.append(functools.partial(_outbox_ctx, drain=run_tasks))
    _routes(app)
    outpost_hub.setup(app, app_metrics.registry)  # after the cache's context
    embedded.setup(app)  # after the hub's: it watches the hub
    return app


def _routes(app: web.Application) -> None:
    all_resources: list[resource.Resource] = [
        *resources.ALL,
        *oauth2.RESOURCES,
        *proxy.RESOURCES,
        *saml.RESOURCES,
        *ldap.RESOURCES,
        *ldap_source.RESOURCES,
    ]
    for r in all_resources:
        app.router.add_routes(resource.routes(r))
    app.router.add_routes(resources.authenticators.routes())
    flows_api.setup(app)
    web_pages.setup(app)
    oauth2.setup(app)  # after the flow executor: its start-up hook uses it
    proxy.setup(app)
    saml.setup(app)  # after the OAuth2 slice: it uses its service
    ldap.setup(app, lambda: app.get(outpost_hub.HUB))  # the hub starts later
    ldap_source.setup(app)
    app.router.add_get("/api/v3/root/config/", root.config, allow_head=False)
    app.router.add_routes(admin.routes())
    app.router.add_get("/api/v3/schema/", _schema, allow_head=False)
    app.router.add_get("/recovery/use-token/{key}/", root.use_recovery_token, allow_head=False)
    app.router.add_get("/-/health/live/", health.live)
    app.router.add_get("/-/health/ready/", health.ready)


@functools.cache
def schema_document() -> dict[str, Any]:
    """The OpenAPI document: built from the code alone, so once per process, and only when first
    asked for (it takes a few hundred milliseconds that start-up need not spend)."""
    return openapi.document(
        [
            *resources.ALL,
            *oauth2.RESOURCES,
            *proxy.RESOURCES,
            *saml.RESOURCES,
            *ldap.RESOURCES,
            *ldap_source.RESOURCES,
        ],
        [
            wire.authenticators.Device,
            *admin.MODELS,
            *outpost_hub.MODELS,
            *flows_api.openapi_models(),
        ],
        {
            **resources.authenticators.openapi_paths(),
            **admin.openapi_paths(),
            **outpost_hub.openapi_paths(),
            **flows_api.openapi_paths(),
        },
        flows_api.openapi_schemas(),
    )


async def _schema(request: web.Request) -> web.Response:
    return http.respond(schema_document())


async def _cache_ctx(app: web.Application) -> AsyncIterator[None]:
    app[state.CACHE] = backends.open_cache(app[state.SETTINGS])
    yield
    await app[state.CACHE].close()


async def _expression_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the expression pool's workers (settings `AUTHENTIK_EXPRESSIONS__*`) now, so that
    the first policy does not wait for them to import the sandbox. The pool is the process's: it
    ends at exit, and its workers end by themselves when this process is gone (`policies.pool`)."""
    wanted = app[state.SETTINGS].expressions
    settings = pool.Settings(wanted.workers, wanted.memory_mib, wanted.grace_seconds)
    if pool.default().settings != settings:
        pool.configure(settings)
    pool.default().start()
    yield


CONFIG_CHANNEL = "config"


async def _config_bus_ctx(app: web.Application) -> AsyncIterator[None]:
    async with config_bus(app[state.STORE], app[state.CACHE]):
        yield


@contextlib.asynccontextmanager
async def config_bus(db: store.Store, bus: cache.Cache) -> AsyncIterator[None]:
    """Tell the other processes and replicas when flow or policy definitions change (`config`)
    or when rows that decide whether a token holds change (`state`: users, memberships,
    revocations, grants), and listen to them, so that every process drops its in-process copies
    (`flows.definitions`, the OAuth2 claim cache). While the subscription is down the store is
    marked as not hearing the others, and the caches that depend on it are bypassed. The
    serving processes and `tessera worker` (whose LDAP syncs change users) both run it."""
    me = uuid.uuid4().hex
    pending: set[asyncio.Task[None]] = set()

    def tell(kind: str) -> Callable[[], None]:
        def changed() -> None:
            task = asyncio.create_task(_publish(bus, {"from": me, "kind": kind}))
            pending.add(task)
            task.add_done_callback(pending.discard)

        return changed

    async def listen() -> None:
        while True:
            try:
                async with bus.subscribe(CONFIG_CHANNEL) as messages:
                    db.state_changed()  # what was cached before may have missed a message
                    db.hears_others = True
                    async for message in messages:
                        if message.get("from") == me:
                            continue
                        if message.get("kind") == "state":
                            db.state_changed()
                        else:
                            db.config_changed()
                return  # the cache was closed
            except cache.CacheUnavailable:
                db.hears_others = False
                db.config_changed()  # messages may have been missed
                db.state_changed()
                await asyncio.sleep(1.0)
            finally:
                db.hears_others = False

    stops = [db.on_config_change(tell("config")), db.on_state_change(tell("state"))]
    listener = asyncio.create_task(listen())
    try:
        yield
    finally:
        for stop in stops:
            stop()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await asyncio.gather(*pending, return_exceptions=True)


async def _publish(bus: cache.Cache, message: cache.Message) -> None:
    try:
        await bus.publish(CONFIG_CHANNEL, message)
    except cache.CacheUnavailable:
        log.warning("could not tell other replicas of a configuration change")


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    db, keyring = app[state.STORE], app[state.KEYRING]
    jobs = [
        asyncio.create_task(tasks.scheduler(db, app[state.SETTINGS], "server")),
        asyncio.create_task(ldap_source.schedule.scheduler(db, keyring, tasks.holder_id("server"))),
    ]
    yield
    for job in jobs:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job


async def _outbox_ctx(app: web.Application, *, drain: bool) -> AsyncIterator[None]:
    """The process that runs the tasks (`drain`: the only one, or worker 0) drains the mail
    outbox unless a worker does (`tasks.mail`); at stop, the outbox writes still under way
    finish first."""
    settings = app[state.SETTINGS]
    job = None
    if drain and settings.worker.embedded:
        drainer = tasks.mail.drainer(app[state.STORE], app[state.KEYRING], settings)
        job = asyncio.create_task(drainer)
    yield
    await stages.email.flush()
    if job is not None:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host.strip("[]"), int(port)


async def _stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def served(runner: web.BaseRunner) -> web.Server:
    """The low-level server of a runner that has been set up."""
    if runner.server is None:
        raise RuntimeError("the runner is not set up")
    return runner.server


async def serve(settings: config.Settings) -> None:
    """Run the core: migrate, bootstrap, then serve HTTP and metrics until SIGTERM/SIGINT."""
    db = await prepare(settings)
    app = create_app(settings, db)
    runner = web.AppRunner(app, access_log=None, **embedded.SERVER_LIMITS)
    metrics_runner = web.AppRunner(app[METRICS].app(), access_log=None)
    await runner.setup()
    await metrics_runner.setup()
    embedded.hot_path(served(runner), app, app[METRICS])
    try:
        host, port = _host_port(settings.listen.http, 9000)
        await web.TCPSite(runner, host, port).start()
        mhost, mport = _host_port(settings.listen.metrics, 9300)
        await web.TCPSite(metrics_runner, mhost, mport).start()
        log.info("serving", http=settings.listen.http, metrics=settings.listen.metrics)
        print(f"Tessera listening on http://{host}:{port}/", flush=True)
        await _stopped()
    finally:
        await runner.cleanup()
        await metrics_runner.cleanup()
        await db.close()


async def work(settings: config.Settings) -> None:
    """Run the maintenance scheduler, the mail outbox's drainer and the LDAP sources' sync
    schedule (and the metrics) until SIGTERM/SIGINT."""
    db = store.Store(settings)
    await db.open()
    await db.migrate()
    worker_metrics = metrics.Metrics(db)
    metrics_runner = web.AppRunner(worker_metrics.app(), access_log=None)
    await metrics_runner.setup()
    # What the worker commits reaches the serving processes as their own commits do: changed
    # users and memberships (an LDAP sync) drop their cached claims, and sessions the worker
    # ends (a user the directory deactivated) reach every outpost as SESSION_END.
    bus = backends.open_cache(settings)
    fanout = contextlib.AsyncExitStack()
    await fanout.enter_async_context(config_bus(db, bus))
    await fanout.enter_async_context(outpost_hub.hub.running(db, bus))
    job = asyncio.create_task(tasks.scheduler(db, settings, "worker"))
    drainer = asyncio.create_task(tasks.mail.drainer(db, _keyring(settings), settings))
    sources = asyncio.create_task(
        ldap_source.schedule.scheduler(db, _keyring(settings), tasks.holder_id("worker"))
    )
    try:
        mhost, mport = _host_port(settings.listen.metrics, 9300)
        await web.TCPSite(metrics_runner, mhost, mport).start()
        log.info("worker running", metrics=settings.listen.metrics)
        await _stopped()
    finally:
        for running in (job, drainer, sources):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await fanout.aclose()
        await bus.close()
        await metrics_runner.cleanup()
        await db.close()
