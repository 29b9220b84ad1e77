"""Prometheus instruments of the flow executor, in a registry of their own (`REGISTRY`) that
every application's metrics registry forwards (`app.metrics`).

- `authentik_flows_plan_time{flow_slug}`: building a plan (authentik's name and label, as its
  published Grafana dashboard reads them);
- `authentik_flows_execution_stage_time{stage_type, method}`: a stage's hooks, `method` being
  `get` (showing its challenge) or `post` (taking an answer), as authentik's;
- `tessera_flow_executions_total{flow_slug, method}` and
  `tessera_flow_execution_duration_seconds{flow_slug, method}`: every executor request of an
  existing flow.

# SECURITY: labels are flow slugs and stage kinds of existing objects only (an unknown slug is a
# 404 before any is recorded), so a client cannot grow the label sets.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

PLAN_TIME = Histogram(
    "authentik_flows_plan_time",
    "Duration to build a plan for a flow",
    ["flow_slug"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)
STAGE_TIME = Histogram(
    "authentik_flows_execution_stage_time",
    "Duration each stage took to execute",
    ["stage_type", "method"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)
EXECUTIONS = Counter(
    "tessera_flow_executions",
    "Flow executor requests, by flow and method",
    ["flow_slug", "method"],
    registry=REGISTRY,
)
EXECUTION_TIME = Histogram(
    "tessera_flow_execution_duration_seconds",
    "Duration of a flow executor request, by flow and method",
    ["flow_slug", "method"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)


@contextlib.contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the duration of the block, whether it returns or raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(*labels).observe(time.perf_counter() - started)


@contextlib.contextmanager
def execution(slug: str, method: str) -> Iterator[None]:
    EXECUTIONS.labels(slug, method).inc()
    with timed(EXECUTION_TIME, slug, method):
        yield
