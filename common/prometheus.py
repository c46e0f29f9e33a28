"""/metrics of every node: Prometheus text with StarRocks' metric names (fe/http/metrics.py,
be/http/metrics.py).

Each node keeps its own :class:`prometheus_client.CollectorRegistry` (no global registry) holding
one custom collector that reads the node's live state at scrape time and yields metric families
(:class:`Family`), as StarRocks' MetricRepo visits its gauges and counters on every GET /metrics.

Why not ``prometheus_client.generate_latest``: it renames every counter to ``<name>_total``
(the OpenMetrics convention), while StarRocks exports counters under their own names:
``starrocks_fe_txn_begin``, ``starrocks_be_stream_load{type="load_rows"}``, ``starrocks_be_load_rows``
(the Prometheus text format 0.0.4 allows them; only OpenMetrics requires the suffix). Dashboards
and alerts written for StarRocks query those names, so :func:`render` writes each family under
the name it was given - ``# HELP``, ``# TYPE`` and samples - in the same text format, which
``prometheus_client.parser.text_string_to_metric_families`` and a Prometheus server read.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from common.httpserver import open_access

TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "unknown": "untyped"}


class Family(Metric):
    """A metric family whose samples carry the family's own name, as StarRocks names them::

        Family("starrocks_fe_routine_load_jobs", "routine load jobs", "gauge").add(1, state="RUNNING")
    """

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        if typ not in TEXT_TYPES:
            raise ValueError(f"metric {name}: type {typ!r} is not one of {sorted(TEXT_TYPES)}")
        super().__init__(name, documentation, typ)

    def add(self, value: float, **labels: object) -> Family:
        self.add_sample(self.name, {k: str(v) for k, v in labels.items()}, float(value))
        return self


def counter(name: str, documentation: str, value: float | None = None) -> Family:
    """A counter (only ever goes up; Prometheus takes rates of it); with ``value``, its one sample."""
    family = Family(name, documentation, "counter")
    return family if value is None else family.add(value)


def gauge(name: str, documentation: str, value: float | None = None) -> Family:
    """A gauge (a value now); with ``value``, its one sample."""
    family = Family(name, documentation, "gauge")
    return family if value is None else family.add(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(value: float) -> str:
    """An integral value as an integer, as StarRocks prints its counts and bytes; others as
    Prometheus' client does (``floatToGoString``: NaN, +Inf, exponents)."""
    if value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return floatToGoString(value)


def render(registry: CollectorRegistry) -> bytes:
    """Every family of ``registry`` in the Prometheus text format (0.0.4), under its own name.

    A family with no sample is left out (a labelled series that does not exist now, such as the
    lag of a job that was stopped, is simply absent: Prometheus marks it stale)."""
    out: list[str] = []
    for family in registry.collect():
        if not family.samples:
            continue
        out.append(f"# HELP {family.name} {_escape_help(family.documentation)}\n")
        out.append(f"# TYPE {family.name} {TEXT_TYPES.get(family.type, family.type)}\n")
        for s in family.samples:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels.items())
            out.append(f"{s.name}{{{labels}}} {_value(s.value)}\n" if labels else f"{s.name} {_value(s.value)}\n")
    return "".join(out).encode("utf-8")


def registry_of(*collectors: object) -> CollectorRegistry:
    """A registry of this node's own (never the process-global ``prometheus_client.REGISTRY``)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


def install_metrics_route(app: web.Application, registry: CollectorRegistry) -> None:
    """``GET /metrics``: no authentication, as in StarRocks (monitoring scrapes it as is)."""

    @open_access
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    app.router.add_get("/metrics", metrics)
