"""`tessera operator`: run the Kopf operator with its health probe and Prometheus metrics.

`tessera.core.cli` parses the command line and calls `run`. Settings come from the environment
(`AUTHENTIK_HOST`/`AUTHENTIK_TOKEN`/`AUTHENTIK_HOST_BROWSER`, or the same with `TESSERA_`), as the
outposts read them, and `TESSERA_OUTPOST_IMAGE` (the image of outpost Deployments whose Outpost
names none; the chart passes the operator's own); a missing or bad value stops the process with
one line naming the key. Kopf finds the cluster as kubectl does (in-cluster service account, else
`$KUBECONFIG`), serves its liveness probe on `--health` (`/healthz`, the Helm chart's probe), and
runs standalone: the chart runs one replica with the Recreate strategy, so there is no peering.
`--namespace` takes exact namespace names (no patterns): the operator then watches only those,
and needs no permission to list namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
import urllib.parse
from collections.abc import Mapping, Sequence

import kopf
from aiohttp import web

from tessera.operator import handlers, metrics
from tessera.operator.handlers import runtime

# The process-level JSON logging the outposts use (the core's own is below the core's layers,
# which the operator does not import).
from tessera.outposts.common import logs

LOG_LEVELS = ("trace", "debug", "info", "warning", "error")


class SettingsError(Exception):
    """A bad setting; the message names the key."""


@dataclasses.dataclass(frozen=True)
class Options:
    namespaces: Sequence[str] = ()
    health: str = "0.0.0.0:8080"
    metrics: str = "0.0.0.0:9300"
    resync_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    concurrency: int = 16


def _env(environ: Mapping[str, str], key: str) -> str:
    return environ.get(f"TESSERA_{key}") or environ.get(f"AUTHENTIK_{key}") or ""


def _url(value: str, key: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"AUTHENTIK_{key}: must be an http(s) URL such as http://core:9000")
    return value.rstrip("/")


def config_from(environ: Mapping[str, str], options: Options) -> runtime.Config:
    host = _env(environ, "HOST")
    if not host:
        raise SettingsError("AUTHENTIK_HOST: required, the core's URL (or TESSERA_HOST)")
    token = _env(environ, "TOKEN")
    if not token:
        raise SettingsError("AUTHENTIK_TOKEN: required, a superuser API token (or TESSERA_TOKEN)")
    browser = _env(environ, "HOST_BROWSER")
    if options.resync_seconds <= 0:
        raise SettingsError("--resync-seconds: must be positive")
    if options.concurrency < 1:
        raise SettingsError("--concurrency: must be at least 1")
    return runtime.Config(
        core_url=_url(host, "HOST"),
        token=token,
        browser_url=_url(browser, "HOST_BROWSER") if browser else "",
        namespaces=_namespaces(options.namespaces),
        resync_seconds=options.resync_seconds,
        retry_base_seconds=options.retry_base_seconds,
        concurrency=options.concurrency,
        outpost_image=_env(environ, "OUTPOST_IMAGE"),
    )


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _namespaces(names: Sequence[str]) -> tuple[str, ...]:
    """The watched namespaces: exact names (RFC 1123 labels), no patterns."""
    for name in names:
        if not _NAMESPACE.fullmatch(name):
            raise SettingsError(f"--namespace: {name!r} is not a namespace name (no patterns)")
    return tuple(dict.fromkeys(names))


def _listen(value: str, flag: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{flag}: expected host:port, got {value!r}")
    return host or "0.0.0.0", int(port)


async def serve(
    config: runtime.Config,
    options: Options,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the operator until `stop` is set (or SIGTERM/SIGINT)."""
    health_host, health_port = _listen(options.health, "--health")
    metrics_host, metrics_port = _listen(options.metrics, "--metrics")
    meters = metrics.Metrics()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(meters.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, metrics_host, metrics_port).start()
    try:
        await kopf.operator(
            registry=handlers.registry(config, meters),
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=True,
            liveness_endpoint=f"http://{health_host}:{health_port}/healthz",
            stop_flag=stop,
            ready_flag=ready,
        )
    finally:
        await runner.cleanup()


def run(options: Options, environ: Mapping[str, str] | None = None) -> int:
    """The command's body: 0 after a clean stop, 2 on a settings error."""
    try:
        env = os.environ if environ is None else environ
        config = config_from(env, options)
        level = (_env(env, "LOG_LEVEL") or "info").lower()
        if level not in LOG_LEVELS:
            raise SettingsError(f"AUTHENTIK_LOG_LEVEL: one of {', '.join(LOG_LEVELS)}")
        _listen(options.health, "--health")
        _listen(options.metrics, "--metrics")
    except SettingsError as exc:
        print(f"tessera operator: configuration error: {exc}", file=sys.stderr)
        return 2
    # One JSON line per record, Kopf's and the Kubernetes client's included, as the core and the
    # outposts log; the token is masked wherever it would appear.
    logs.configure(level, secrets=[config.token])
    asyncio.run(serve(config, options))
    return 0
