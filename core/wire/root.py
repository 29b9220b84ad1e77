"""Wire model of `/api/v3/root/config/` (read by the web UI and the outposts)."""

from __future__ import annotations

from tessera.core.wire.common import Response


class ErrorReportingConfig(Response):
    enabled: bool
    sentry_dsn: str
    environment: str
    send_pii: bool
    traces_sample_rate: float


class Config(Response):
    error_reporting: ErrorReportingConfig
    capabilities: list[str]
    cache_timeout: int
    cache_timeout_flows: int
    cache_timeout_policies: int
