"""Prometheus instruments of the policy engine, in a registry of their own (`REGISTRY`) that
every application's metrics registry forwards (`app.metrics`).

- `tessera_policy_executions_total{kind, result}` (`result`: pass, fail or error) and
  `tessera_policy_execution_duration_seconds{kind}`: each policy run (cached results are not
  runs);
- `authentik_policies_execution_time{binding_order, binding_target_type, binding_target_name,
  object_pk, object_type, mode}`: authentik's name and labels, as its published Grafana dashboard
  reads them. `binding_target_*` name the policy; `object_pk` is the binding's target (a flow,
  a flow's stage binding or an application), whose type the engine does not know: `object_type`
  is left empty. `mode` is authentik's `execute_process`.

Labels are policy kinds and existing bindings, never anything a client sends.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

EXECUTIONS = Counter(
    "tessera_policy_executions",
    "Policy runs, by policy kind and result",
    ["kind", "result"],
    registry=REGISTRY,
)
EXECUTION_TIME = Histogram(
    "tessera_policy_execution_duration_seconds",
    "Duration of a policy run, by policy kind",
    ["kind"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)
AUTHENTIK_EXECUTION_TIME = Histogram(
    "authentik_policies_execution_time",
    "Execution times for single policies",
    [
        "binding_order",
        "binding_target_type",
        "binding_target_name",
        "object_pk",
        "object_type",
        "mode",
    ],
    registry=REGISTRY,
    buckets=_BUCKETS,
)


def observe(
    policy_kind: str, name: str, binding: dict[str, object], result: str, secs: float
) -> None:
    """Record one policy run of `binding` (its row: `order` and `target`)."""
    EXECUTIONS.labels(policy_kind, result).inc()
    EXECUTION_TIME.labels(policy_kind).observe(secs)
    AUTHENTIK_EXECUTION_TIME.labels(
        str(binding.get("order", "")),
        "policy",
        name,
        str(binding.get("target", "")),
        "",
        "execute_process",
    ).observe(secs)
