"""Prometheus metrics of an outpost process, served at `/metrics` on the metrics port (9300).

Each `Metrics` owns its registry (tests run several outposts in one process); an outpost type
adds its own collectors to `registry`. The connection gauge carries authentik's labels
(`outpost_name`, `outpost_type`, `uuid`).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connection = Gauge(
            "tessera_outpost_connection",
            "1 while the control channel to the core is open, else 0",
            ["outpost_name", "outpost_type", "uuid"],
            registry=self.registry,
        )
        self.last_refresh = Gauge(
            "tessera_outpost_last_refresh_timestamp_seconds",
            "When the configuration was last fetched from the core",
            registry=self.registry,
        )
        self.refreshes = Counter(
            "tessera_outpost_refreshes",
            "Configuration fetches, by result (ok, unchanged, error)",
            ["result"],
            registry=self.registry,
        )
        self.reconnects = Counter(
            "tessera_outpost_reconnects",
            "Control-channel connection attempts after the first",
            registry=self.registry,
        )
        self.serving_cached = Gauge(
            "tessera_outpost_serving_cached_config",
            "1 while the configuration in use was read from disk, not fetched from the core",
            registry=self.registry,
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        return app
