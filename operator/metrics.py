"""Prometheus metrics of the operator, served on the metrics port (`:9300/metrics`).

The handlers (`tessera.operator.handlers`) record every reconcile; `tessera.operator.main` serves
the registry. Each runtime owns its registry, so tests can run several operators in one process.
Labels are bounded: the kind, a result out of a fixed set, and a `Reason`.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "tessera_operator_reconciles",
            "Reconciles of custom resources, by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "tessera_operator_reconcile_errors",
            "Failed reconciles, by kind and the Ready reason reported",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tessera_operator_reconcile_duration_seconds",
            "Time of one reconcile, core calls and Secret writes included",
            ["kind"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        return app
