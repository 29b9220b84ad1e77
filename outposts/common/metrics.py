"""Prometheus metrics of an outpost process, served at `/metrics` on the metrics port (9300).

Each `Metrics` owns its registry (tests run several outposts in one process); an outpost type
adds its own counters and gauges to `registry` (`Counter(..., registry=...)`, `Gauge`) or
registers a collector of its own (anything with `collect()` yielding families with `name`,
`documentation`, `type` and `samples`, such as prometheus-client's). The connection gauge carries
authentik's labels (`outpost_name`, `outpost_type`, `uuid`).

Why not prometheus-client, which the core uses: importing any part of it imports its HTTP
servers, WSGI and ASGI adapters, push gateway and multiprocess modes (about 1 MiB of an outpost's
idle memory, issue 17) for a handful of counters and gauges. This module writes the same
exposition as prometheus-client 0.2x for them, in the text format 0.0.4 or, when the scraper asks
for it (Prometheus does), OpenMetrics 1.0: the same series (`<name>_total` and `<name>_created`
for counters), the same escaping and number formatting, `name[]` filtering and compression;
`tests/outposts/common/test_metrics.py` compares the two byte for byte.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from aiohttp import web

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None


class Family(NamedTuple):
    """One metric and its samples, as a collector yields it."""

    name: str
    documentation: str
    type: str
    samples: list[Sample]


class Collector(Protocol):
    def collect(self) -> Iterable[Any]: ...


class Registry:
    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def collect(self) -> Iterator[Any]:
        for collector in list(self._collectors):
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of the sample `name` with exactly `labels`, or None (as prometheus-client)."""
        wanted = labels or {}
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return None


class _Value:
    __slots__ = ("created", "function", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()
        self.function: Callable[[], float] | None = None

    def read(self) -> float:
        return float(self.function()) if self.function is not None else self.value


class _Child:
    """One labelled series of a counter or a gauge."""

    __slots__ = ("_counter", "_value")

    def __init__(self, value: _Value, counter: bool) -> None:
        self._value, self._counter = value, counter

    def inc(self, amount: float = 1.0) -> None:
        if self._counter and amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._value.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self._value.value -= amount

    def set(self, value: float) -> None:
        self._value.value = float(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self._value.function = function


class _Metric:
    TYPE = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        if self.TYPE == "counter":
            name = name.removesuffix("_total")
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], _Value] = {}
        if not self.labelnames:
            self._series[()] = _Value()
        if registry is not None:
            registry.register(self)

    def labels(self, **values: Any) -> _Child:
        if set(values) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels must be {self.labelnames}")
        key = tuple(str(values[n]) for n in self.labelnames)
        value = self._series.get(key)
        if value is None:
            value = self._series[key] = _Value()
        return _Child(value, self.TYPE == "counter")

    def _only(self) -> _Child:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels()")
        return _Child(self._series[()], self.TYPE == "counter")

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def collect(self) -> Iterator[Family]:
        samples = []
        for key, value in list(self._series.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            if self.TYPE == "counter":
                samples.append(Sample(self.name + "_total", labels, value.read()))
                samples.append(Sample(self.name + "_created", labels, value.created))
            else:
                samples.append(Sample(self.name, labels, value.read()))
        yield Family(self.name, self.documentation, self.TYPE, samples)


class Counter(_Metric):
    TYPE = "counter"


class Gauge(_Metric):
    TYPE = "gauge"

    def set(self, value: float) -> None:
        self._only().set(value)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    def set_function(self, function: Callable[[], float]) -> None:
        self._only().set_function(function)


# Exposition ----------------------------------------------------------------------------------


def _number(value: float) -> str:
    """A float as Go writes it, as prometheus-client's `floatToGoString`."""
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape(value: str, quote: bool = True) -> str:
    value = value.replace("\\", r"\\").replace("\n", r"\n")
    return value.replace('"', r"\"") if quote else value


def _labels(sample: Any) -> str:
    if not sample.labels:
        return ""
    pairs = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(sample.labels.items()))
    return "{" + pairs + "}"


def text(families: Iterable[Any]) -> str:
    """The text format 0.0.4 (prometheus-client's `generate_latest`)."""
    out: list[str] = []
    for family in families:
        name, kind = family.name, family.type
        if kind == "counter":
            name += "_total"
        elif kind not in ("gauge", "histogram", "summary"):
            kind = "untyped"
        help_text = _escape(family.documentation, quote=False)
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        created: list[str] = []
        for sample in family.samples:
            line = f"{sample.name}{_labels(sample)} {_number(sample.value)}"
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000):d}"
            if sample.name == family.name + "_created":
                created.append(line + "\n")
            else:
                out.append(line + "\n")
        if created:
            name = family.name + "_created"
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
            out.extend(created)
    return "".join(out)


def openmetrics(families: Iterable[Any]) -> str:
    """OpenMetrics 1.0 (prometheus-client's `openmetrics.exposition.generate_latest`)."""
    out: list[str] = []
    for family in families:
        out.append(f"# HELP {family.name} {_escape(family.documentation)}\n")
        out.append(f"# TYPE {family.name} {family.type}\n")
        for sample in family.samples:
            line = f"{sample.name}{_labels(sample)} {_number(sample.value)}"
            if sample.timestamp is not None:
                line += f" {sample.timestamp}"
            out.append(line + "\n")
    out.append("# EOF\n")
    return "".join(out)


def handler(registry: Registry) -> Callable[[web.Request], Any]:
    """`GET /metrics`: OpenMetrics when the Accept header names it, else the text format;
    `?name[]=<sample name>` keeps only the metrics with such a sample; compressed when the
    client accepts it (as prometheus-client's aiohttp handler)."""

    async def metrics(request: web.Request) -> web.Response:
        accept = ",".join(request.headers.getall("Accept", []))
        wanted = set(request.query.getall("name[]", []))
        families: Iterable[Any] = registry.collect()
        if wanted:
            families = [f for f in families if any(s.name in wanted for s in f.samples)]
        media = {part.split(";")[0].strip() for part in accept.split(",")}
        if "application/openmetrics-text" in media:
            body, content_type = openmetrics(families), OPENMETRICS
        else:
            body, content_type = text(families), TEXT
        response = web.Response(body=body.encode(), headers={"Content-Type": content_type})
        response.enable_compression()
        return response

    return metrics


class Metrics:
    def __init__(self) -> None:
        self.registry = Registry()
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
        app.router.add_get("/metrics", handler(self.registry))
        return app
