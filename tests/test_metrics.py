"""The request metrics: the same exposition the client library's Counter and Histogram
give for the same observations."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bff.metrics import HttpMetrics

# On and between the bucket bounds, below the first and above the last.
OBSERVED = [
    ("GET", "/", 200, 0.0),
    ("GET", "/", 200, 0.005),
    ("GET", "/", 200, 0.0050001),
    ("GET", "/", 200, 0.1),
    ("GET", "/", 500, 2.5),
    ("GET", "/", 200, 11.0),
    ("POST", "/scope", 303, 0.02),
    ("OTHER", "unmatched", 405, 0.001),
]
_CREATED = re.compile(r"^bff_\w+_created\{.*$", re.MULTILINE)


def library_exposition() -> str:
    registry = CollectorRegistry()
    requests = Counter(
        "bff_http_requests",
        "HTTP requests served.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "bff_http_request_duration_seconds",
        "Time to serve an HTTP request.",
        ["method", "route"],
        registry=registry,
    )
    for method, route, status, seconds in OBSERVED:
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(seconds)
    return generate_latest(registry).decode()


def test_the_exposition_is_the_client_librarys() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for observation in OBSERVED:
        metrics.observe(*observation)
    ours = generate_latest(registry).decode()
    # The creation times differ; that each series has one is part of the comparison.
    assert _CREATED.sub("created", ours) == _CREATED.sub("created", library_exposition())
    assert 'bff_http_requests_total{method="GET",route="/",status="200"} 5.0' in ours
    assert 'bff_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/"} 2.0' in ours


def test_nothing_observed_exposes_no_series() -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry)
    assert "{" not in generate_latest(registry).decode()
