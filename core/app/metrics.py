"""Prometheus metrics of the core, served on the metrics port (`:9300/metrics`).

Each application owns its registry (so tests can build many apps): request counts and latency by
route and status, store pool use, build info, the standard process, platform and garbage
collector collectors, and the flow executor's, policy engine's and mail outbox's instruments
(`flows.metrics`, `policies.metrics`, `tasks.mail`, whose registries it forwards). Served by
prometheus-client's aiohttp handler: the text format, or OpenMetrics when the scraper asks for it
(`Accept`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tessera.core import store, tasks
from tessera.core.api import http
from tessera.core.flows import metrics as flow_metrics
from tessera.core.policies import metrics as policy_metrics

VERSION = "0.1.0"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _PoolCollector(Collector):
    def __init__(self, db: store.Store) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            status = self.db.pool_status()
        except store.StoreUnavailable:
            return
        size = GaugeMetricFamily("tessera_store_pool_size", "Connections the store pool keeps")
        size.add_metric([], status.size)
        used = GaugeMetricFamily("tessera_store_pool_checked_out", "Store connections in use")
        used.add_metric([], status.checked_out)
        yield size
        yield used


class _Forwarded(Collector):
    """The metrics of another registry (a lower layer's instruments), as this registry's."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class Metrics:
    def __init__(self, db: store.Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tessera_http_requests",
            "HTTP requests served",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tessera_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        build = Info("tessera_build", "Build information", registry=self.registry)
        build.info({"version": VERSION, "python": platform.python_version()})
        self.registry.register(_PoolCollector(db))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_Forwarded(flow_metrics.REGISTRY))
        self.registry.register(_Forwarded(policy_metrics.REGISTRY))
        self.registry.register(_Forwarded(tasks.mail.REGISTRY))
        # The labelled children by (route, method, status): bounded as the labels are.
        self._labelled: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        @web.middleware
        async def measure(request: web.Request, handler: http.Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                # Labels are bounded: route templates, not paths; unknown methods fold into one.
                route = request.match_info.route.resource
                name = route.canonical if route is not None else "unmatched"
                self.observe(name, request.method, status, time.perf_counter() - started)

        return measure

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request served on `route` (a template, never a path) with `status`."""
        method = method if method in _METHODS else "other"
        key = (route, method, status)
        children = self._labelled.get(key)
        if children is None:  # `labels()` takes a lock and builds a key each time
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._labelled[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def app(self) -> web.Application:
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        return metrics_app
