"""Wire model of `/api/v3/root/config/` (read by the web UI and the outposts)."""

from __future__ import annotations

from typing import Literal

from tessera.core.wire.common import Response

# authentik's optional capabilities (Tessera has none of them yet: `api.root.CAPABILITIES`).
Capability = Literal[
    "can_save_media",
    "can_save_reports",
    "can_geo_ip",
    "can_asn",
    "can_impersonate",
    "can_debug",
    "is_enterprise",
    "can_request",
    "can_agent_self_service",
]


class ErrorReportingConfig(Response):
    enabled: bool
    sentry_dsn: str
    environment: str
    send_pii: bool
    traces_sample_rate: float | int  # authentik's schema: "number or integer"


class Config(Response):
    error_reporting: ErrorReportingConfig
    capabilities: list[Capability]
    cache_timeout: int
    cache_timeout_flows: int
    cache_timeout_policies: int
