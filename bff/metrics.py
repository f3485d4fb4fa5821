"""Prometheus metrics: one registry per app, so several apps (tests) never share counters."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "render"]

_BOUNDS = tuple(bound for bound in Histogram.DEFAULT_BUCKETS if bound != float("inf"))
# The ``le`` labels as the client library writes them (every bound is a short decimal).
_LE = (*(repr(bound) for bound in _BOUNDS), "+Inf")


class _Latency:
    """One label set's histogram: a count per bucket (the last is +Inf), and the sum."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.total = 0.0
        self.created = time.time()


class HttpMetrics:
    """Request counts and latency by route template (never by raw path: unbounded labels).

    Kept as plain numbers and turned into Prometheus samples only when scraped: the
    client library's children lock and walk their buckets in Python on every request
    (a few µs). Observed from the event loop's thread only.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests: dict[tuple[str, str, int], list[float]] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}
        registry.register(_HttpCollector(self))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request; the caller keeps the label values bounded."""
        count = self._requests.get((method, route, status))
        if count is None:
            count = self._requests[(method, route, status)] = [0.0, time.time()]
        count[0] += 1
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[(method, route)] = _Latency()
        # Prometheus buckets are "less than or equal": the first bound >= seconds.
        latency.counts[bisect.bisect_left(_BOUNDS, seconds)] += 1
        latency.total += seconds


class _HttpCollector(Collector):
    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "bff_http_requests", "HTTP requests served.", labels=["method", "route", "status"]
        )
        for (method, route, status), (count, created) in list(self._metrics._requests.items()):
            requests.add_metric([method, route, str(status)], count, created=created)
        yield requests
        name = "bff_http_request_duration_seconds"
        latency = HistogramMetricFamily(
            name, "Time to serve an HTTP request.", labels=["method", "route"]
        )
        for (method, route), tally in list(self._metrics._latency.items()):
            cumulative, buckets = 0, []
            for le, count in zip(_LE, tally.counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            latency.add_metric([method, route], buckets, tally.total)
            latency.samples.append(
                Sample(f"{name}_created", {"method": method, "route": route}, tally.created)
            )
        yield latency


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
