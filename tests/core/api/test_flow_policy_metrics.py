"""Metrics: the standard process, platform and GC collectors; the flow executor's executions,
plan and stage times by flow; the policy engine's runs and durations by policy kind, with
authentik's names where its published dashboard reads them; OpenMetrics when asked for."""

from __future__ import annotations

from typing import Any

from aiohttp import test_utils
from prometheus_client.parser import text_string_to_metric_families

from tessera.core import app
from tessera.core.policies import engine

FLOW = "default-authentication-flow"


async def _scrape(client: Any, **headers: str) -> tuple[str, str]:
    metrics_app = client.app[app.METRICS].app()
    async with test_utils.TestClient(test_utils.TestServer(metrics_app)) as scraper:
        response = await scraper.get("/metrics", headers=headers)
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


def _value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples matching `labels` (0 when absent)."""
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_standard_collectors_are_exported(client: Any) -> None:
    _, text = await _scrape(client)
    assert _value(text, "process_resident_memory_bytes") > 0
    assert _value(text, "process_open_fds") > 0
    assert "python_gc_collections_total" in text and "python_info" in text


async def test_openmetrics_when_the_scraper_asks(client: Any) -> None:
    kind, text = await _scrape(client, Accept="application/openmetrics-text; version=1.0.0")
    assert kind.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
    kind, _ = await _scrape(client)
    assert kind.startswith("text/plain")


async def test_flow_executions_plan_and_stage_times_by_flow(client: Any) -> None:
    _, before = await _scrape(client)
    path = f"/api/v3/flows/executor/{FLOW}/"
    assert (await client.get(path)).status == 200
    response = await client.post(path, json={"uid_field": "akadmin"})
    assert response.status == 200
    _, after = await _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("tessera_flow_executions_total", flow_slug=FLOW, method="get") == 1
    assert delta("tessera_flow_executions_total", flow_slug=FLOW, method="post") == 1
    assert delta("tessera_flow_execution_duration_seconds_count", flow_slug=FLOW) == 2
    assert delta("authentik_flows_plan_time_count", flow_slug=FLOW) == 1
    stage = {"stage_type": "ak-stage-identification"}
    assert delta("authentik_flows_execution_stage_time_count", method="get", **stage) >= 1
    assert delta("authentik_flows_execution_stage_time_count", method="post", **stage) == 1


async def test_attack_unknown_flow_slugs_do_not_grow_the_labels(client: Any) -> None:
    for n in range(5):
        assert (await client.get(f"/api/v3/flows/executor/no-such-flow-{n}/")).status == 404
    _, text = await _scrape(client)
    assert "no-such-flow" not in text


async def test_policy_runs_and_durations_by_kind(client: Any) -> None:
    policy = {"pk": "p-metrics", "name": "always-no", "kind": "dummy", "config": {"result": False}}
    row = {
        "pk": "b-metrics",
        "policy": "p-metrics",
        "group": None,
        "user": None,
        "negate": False,
        "timeout": 5,
        "failure_result": False,
        "order": 3,
        "target": "target-metrics",
    }
    broken = {**policy, "pk": "p-broken", "name": "broken", "config": {"wait_min": "x"}}
    _, before = await _scrape(client)
    loaded = engine.Loaded([row], {"p-metrics": policy}, set())
    result = await engine.decide(loaded, "all", engine.Request(user=None))
    assert not result.passing
    loaded = engine.Loaded([{**row, "policy": "p-broken"}], {"p-broken": broken}, set())
    assert (await engine.decide(loaded, "all", engine.Request(user=None))).error
    _, after = await _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("tessera_policy_executions_total", kind="dummy", result="fail") == 1
    assert delta("tessera_policy_execution_duration_seconds_count", kind="dummy") == 1
    authentik = {"binding_target_name": "always-no", "object_pk": "target-metrics"}
    assert delta("authentik_policies_execution_time_count", binding_order="3", **authentik) == 1
    # Settings that cannot be read never ran: an error event, but no run to time.
    assert delta("tessera_policy_executions_total", kind="dummy", result="error") == 0
