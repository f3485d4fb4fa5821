"""Token broker metrics. Labelled by connection id only: tenant ids would be unbounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class BrokerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter(
            "bff_token_cache_hits",
            "Token requests served from the cache.",
            ["connection"],
            registry=registry,
        )
        self.misses = Counter(
            "bff_token_cache_misses",
            "Token requests that had to wait for the vendor.",
            ["connection"],
            registry=registry,
        )
        self.refreshes = Counter(
            "bff_token_refreshes",
            "Background token refreshes, by outcome.",
            ["connection", "outcome"],
            registry=registry,
        )
        self.upstream_calls = Counter(
            "bff_upstream_calls",
            "Calls to the vendor, by outcome.",
            ["connection", "outcome"],
            registry=registry,
        )
        self.cooldowns = Counter(
            "bff_upstream_cooldowns",
            "Cool-downs the vendor asked for (429), by extent.",
            ["connection", "extent"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "bff_upstream_circuit_state",
            "Circuit breaker: 0 closed, 1 open, 2 half open.",
            ["connection"],
            registry=registry,
        )
