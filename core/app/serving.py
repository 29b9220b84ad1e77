"""The serving processes of `tessera server`: one process, or a supervisor and its workers.

`AUTHENTIK_WEB__WORKERS` (or `TESSERA_WEB__WORKERS`; default 2, as authentik's) sets how many
processes serve HTTP, each with its own event loop, so that a core uses every core of its
machine. `run` (called by the CLI) decides:

- one process (`app.serve`) when one is asked for, and on the embedded default: its in-process
  cache holds flow state and throttle counters that other processes could not see, so it keeps
  one process and says so at start;
- otherwise a supervisor (`Supervisor`). It migrates and bootstraps once, then starts the
  workers (`python -m tessera.core.cli server` with the hidden `--worker-*` options). Each
  worker listens on the HTTP port itself with SO_REUSEPORT, and the kernel spreads new
  connections evenly over the listening workers. (One socket shared by all would not spread
  them: asyncio accepts up to a hundred waiting connections at each wake-up, so the first worker
  awake takes a whole burst of keep-alive connections.) The supervisor holds the port bound,
  without listening, so that no other program takes it while a worker restarts; connections
  still waiting in the queue of a worker that dies are reset. A worker that exits is started
  again (after 0.5 s, longer while workers keep dying young); SIGTERM or SIGINT stops the
  workers, then the supervisor.

Everything the workers must share lives in the store or the cache (PostgreSQL or Redis): sessions,
flow state, throttles, consent, revocations and the bus. Worker 0 also runs the embedded
maintenance scheduler. Each worker serves its metrics on a Unix socket in a private directory,
and the supervisor serves the metrics port: every worker's samples with a `worker` label, plus
its own `tessera_web_workers` and `tessera_web_worker_restarts_total`. A worker whose supervisor
is gone (killed without a chance to stop it) stops within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from tessera.core import app, config, store
from tessera.core.app import backends, embedded

log = structlog.get_logger(__name__)

RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
YOUNG = 10.0  # a worker that dies younger than this makes the next restart wait longer
STOP_TIMEOUT = 10.0
SCRAPE_TIMEOUT = 5.0


def process_count(settings: config.Settings) -> tuple[int, str]:
    """How many serving processes, and a sentence saying why when fewer than asked."""
    asked = settings.web.workers
    if asked > 1 and backends.kind(settings) == "memory":
        return 1, (
            "the embedded default (SQLite, in-process cache) serves with one process: its cache "
            f"is not shared between processes (AUTHENTIK_WEB__WORKERS={asked} applies once "
            "PostgreSQL or Redis is configured)"
        )
    return asked, ""


def run(settings: config.Settings) -> int:
    """Serve until SIGTERM or SIGINT: in this process, or through workers."""
    count, reason = process_count(settings)
    if reason and "workers" in settings.web.model_fields_set:  # said only to who asked for more
        log.info("one serving process", reason=reason)
    if count == 1:
        asyncio.run(app.serve(settings))
        return 0
    return asyncio.run(Supervisor(settings, count).run())


class Supervisor:
    """Starts `count` workers on one listening socket and keeps them running."""

    def __init__(self, settings: config.Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.restarts = 0
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._rundir = Path(tempfile.mkdtemp(prefix="tessera-workers-"))

    async def run(self) -> int:
        db = await app.prepare(self.settings)  # migrations and bootstrap, once
        await db.close()
        host, port = app._host_port(self.settings.listen.http, 9000)
        reserved = _reserve(host, port)
        metrics = await self._serve_metrics()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            keepers = [asyncio.create_task(self._keep(i)) for i in range(self.count)]
            if await self._started():
                listen = self.settings.listen
                log.info("serving", http=listen.http, metrics=listen.metrics, workers=self.count)
                print(
                    f"Tessera listening on http://{host}:{port}/ ({self.count} workers)", flush=True
                )
            await self._stopping.wait()
            await self._stop_workers()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            await metrics.cleanup()
            reserved.close()
            shutil.rmtree(self._rundir, ignore_errors=True)
        return 0

    async def _started(self) -> bool:
        """Wait until every worker listens (each makes its metrics socket last); False when
        stopping first."""
        while not all(self._metrics_path(i).exists() for i in range(self.count)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=0.05)
            if self._stopping.is_set():
                return False
        return True

    async def _keep(self, index: int) -> None:
        """Run worker `index`, and run it again each time it exits, until stopping."""
        delay = RESTART_DELAY
        while not self._stopping.is_set():
            started = time.monotonic()
            proc = await self._start(index)
            self._procs[index] = proc
            if self._stopping.is_set():  # stopped while this one was being started
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            code = await proc.wait()
            if self._stopping.is_set():
                return
            self.restarts += 1
            young = time.monotonic() - started < YOUNG
            delay = min(delay * 2, MAX_RESTART_DELAY) if young else RESTART_DELAY
            log.warning("worker exited; starting it again", worker=index, code=code, after=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _start(self, index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tessera.core.cli",
            "server",
            f"--worker-index={index}",
            f"--worker-metrics={self._metrics_path(index)}",
            f"--worker-parent={os.getpid()}",
        )

    async def _stop_workers(self) -> None:
        procs = [p for p in self._procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        waiting = asyncio.gather(*(p.wait() for p in procs))
        try:
            await asyncio.wait_for(waiting, timeout=STOP_TIMEOUT)
        except TimeoutError:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))

    def _metrics_path(self, index: int) -> Path:
        return self._rundir / f"metrics-{index}.sock"

    async def _serve_metrics(self) -> web.AppRunner:
        async def expose(_request: web.Request) -> web.Response:
            body = await self._metrics()
            return web.Response(body=body, content_type="text/plain")

        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", expose)
        runner = web.AppRunner(metrics_app, access_log=None)
        await runner.setup()
        mhost, mport = app._host_port(self.settings.listen.metrics, 9300)
        await web.TCPSite(runner, mhost, mport).start()
        return runner

    async def _metrics(self) -> bytes:
        """Every live worker's metrics, labelled by worker, and the supervisor's own."""
        texts = await asyncio.gather(*(self._scrape(i) for i in range(self.count)))
        registry = CollectorRegistry()
        registry.register(_Merged(dict(enumerate(texts)), self))
        return generate_latest(registry)

    async def _scrape(self, index: int) -> str:
        path = self._metrics_path(index)
        if not path.exists():
            return ""
        connector = aiohttp.UnixConnector(path=str(path))
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get("http://worker/metrics") as response,
            ):
                return await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return ""  # a worker being restarted: its samples are absent from this scrape

    def alive(self) -> int:
        return sum(1 for p in self._procs.values() if p.returncode is None)


class _Merged(Collector):
    """The workers' metric families, each sample with a `worker` label; and the supervisor's."""

    def __init__(self, texts: dict[int, str], supervisor: Supervisor) -> None:
        self.texts = texts
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for index, text in self.texts.items():
            for family in text_string_to_metric_families(text):
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(index)}
                    into.samples.append(sample._replace(labels=labels))
        yield from merged.values()
        workers = GaugeMetricFamily("tessera_web_workers", "Serving worker processes running")
        workers.add_metric([], self.supervisor.alive())
        restarts = CounterMetricFamily(
            "tessera_web_worker_restarts", "Serving worker processes started again after exiting"
        )
        restarts.add_metric([], self.supervisor.restarts)
        yield workers
        yield restarts


def _reserve(host: str, port: int) -> socket.socket:
    """The HTTP port bound (with SO_REUSEPORT, as the workers bind it) but not listened on: no
    connection waits here, and no other program can take the port while workers restart."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


async def serve_worker(settings: config.Settings, index: int, metrics: Path, parent: int) -> None:
    """One worker: the app on the HTTP port (SO_REUSEPORT), its metrics on a Unix socket, until
    SIGTERM, SIGINT or the supervisor's end."""
    db = store.Store(settings)
    await db.open()  # the supervisor migrated
    application = app.create_app(settings, db, run_tasks=index == 0)
    runner = web.AppRunner(application, access_log=None, **embedded.SERVER_LIMITS)
    metrics_runner = web.AppRunner(application[app.METRICS].app(), access_log=None)
    await runner.setup()
    await metrics_runner.setup()
    embedded.hot_path(app.served(runner), application, application[app.METRICS])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    orphan_watch = asyncio.create_task(_watch_parent(parent, stop))
    try:
        host, port = app._host_port(settings.listen.http, 9000)
        await web.TCPSite(runner, host, port, reuse_port=True).start()
        await web.UnixSite(metrics_runner, str(metrics)).start()
        log.debug("worker serving", worker=index, pid=os.getpid())  # the supervisor says it
        await stop.wait()
    finally:
        orphan_watch.cancel()
        await runner.cleanup()
        await metrics_runner.cleanup()
        await db.close()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set `stop` once the supervisor is gone (this process then has another parent)."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the supervisor is gone; stopping")
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
