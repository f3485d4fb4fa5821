"""Prometheus metrics: one registry per app, so several apps (tests) never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "render"]


class HttpMetrics:
    """Request counts and latency by route template (never by raw path: unbounded labels)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "bff_http_requests",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "bff_http_request_duration_seconds",
            "Time to serve an HTTP request.",
            ["method", "route"],
            registry=registry,
        )
        # The labelled children, looked up once: labels() locks and validates each time.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request; the caller keeps the label values bounded."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
