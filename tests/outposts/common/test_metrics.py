"""The outposts' `/metrics` writes what prometheus-client writes for the same metrics, in both
formats, byte for byte (the creation times aside, which differ by construction)."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from tessera.outposts.common import metrics

CREATED = re.compile(r"^(\S+_created(?:\{.*\})?) \S+$", re.MULTILINE)
ODD = 'a "quoted"\nname \\ with é'


class Foreign:
    """A collector of prometheus-client's families, as the LDAP outpost registers."""

    def collect(self) -> Iterator[Any]:
        ops = CounterMetricFamily("ldap_operations", "LDAP operations by kind", labels=["op"])
        ops.add_metric(["bind"], 3)
        ops.add_metric(["search"], 1e12)
        yield ops
        yield GaugeMetricFamily("ldap_connections", 'Open "LDAP"\nconnections', value=2)


def fill(module: Any, registry: Any) -> None:
    """The same metrics through either implementation's Counter and Gauge."""
    refreshes = module.Counter(
        "outpost_refreshes_total", "Fetches, by result", ["result"], registry=registry
    )
    refreshes.labels(result="ok").inc()
    refreshes.labels(result=ODD).inc(2.5)
    module.Counter("outpost_reconnects", "Attempts after the first", registry=registry).inc(0)
    connection = module.Gauge(
        "outpost_connection", "1 while open", ["outpost_name", "uuid"], registry=registry
    )
    connection.labels(outpost_name=ODD, uuid="u-1").set(1)
    module.Gauge(
        "outpost_unlabelled_none", "A labelled gauge with no series", ["x"], registry=registry
    )
    module.Gauge("outpost_last_refresh", "When \\ last", registry=registry).set(1733480000.123)
    module.Gauge("outpost_sessions", "Held", registry=registry).set_function(lambda: 7)
    module.Gauge("outpost_tiny", "Small and odd values", registry=registry).set(float("-inf"))
    registry.register(Foreign())


def both() -> tuple[metrics.Registry, prometheus_client.CollectorRegistry]:
    ours, theirs = metrics.Registry(), prometheus_client.CollectorRegistry()
    fill(metrics, ours)
    fill(prometheus_client, theirs)
    return ours, theirs


def without_creation_times(text: str) -> str:
    return CREATED.sub(r"\1 <created>", text)


def test_the_text_format_is_prometheus_clients() -> None:
    ours, theirs = both()
    written = metrics.text(ours.collect())
    assert "_created" in written and "\\n" in written  # (the cases below are exercised)
    expected = prometheus_client.generate_latest(theirs).decode()
    assert without_creation_times(written) == without_creation_times(expected)


def test_openmetrics_is_prometheus_clients() -> None:
    ours, theirs = both()
    written = metrics.openmetrics(ours.collect())
    expected = openmetrics_exposition.generate_latest(theirs).decode()
    assert without_creation_times(written) == without_creation_times(expected)


def test_sample_values_are_read_as_prometheus_client_reads_them() -> None:
    ours, theirs = both()
    for name, labels in [
        ("outpost_refreshes_total", {"result": ODD}),
        ("outpost_reconnects_total", None),
        ("outpost_sessions", None),
        ("ldap_operations_total", {"op": "search"}),
        ("outpost_refreshes_total", {"result": "missing"}),
    ]:
        assert ours.get_sample_value(name, labels) == theirs.get_sample_value(name, labels)


def test_counters_only_go_up_and_labels_must_match() -> None:
    counter = metrics.Counter("c", "c", ["a"], registry=metrics.Registry())
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels(a="x").inc(-1)
    with pytest.raises(ValueError, match="labels must be"):
        counter.labels(b="x")
    with pytest.raises(ValueError, match=r"use \.labels"):
        counter.inc()  # a labelled counter has no series of its own


@pytest.fixture
async def scraper() -> Any:
    registry, _ = both()
    app = web.Application()
    app.router.add_get("/metrics", metrics.handler(registry))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def test_the_scraper_chooses_the_format(scraper: TestClient) -> None:
    plain = await scraper.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE outpost_refreshes_total counter" in await plain.text()
    prometheus = await scraper.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
            "text/plain;version=0.0.4;q=0.3,*/*;q=0.1",
            "Accept-Encoding": "gzip",
        },
        auto_decompress=False,
    )
    assert prometheus.headers["Content-Type"] == metrics.OPENMETRICS
    assert prometheus.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(await prometheus.read()).decode()
    assert body.endswith("# EOF\n") and "# TYPE outpost_refreshes counter" in body


async def test_name_filter_keeps_the_named_metrics(scraper: TestClient) -> None:
    answer = await scraper.get(
        "/metrics", params=[("name[]", "outpost_sessions"), ("name[]", "ldap_connections")]
    )
    names = re.findall(r"^# TYPE (\S+)", await answer.text(), re.MULTILINE)
    assert names == ["outpost_sessions", "ldap_connections"]
