"""Vendor proxy metrics. Labels are fixed words: never a path, a user or a tenant."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter

# What the proxy did after a vendor 401: sent the request again with a fresh token;
# could not (its body streamed, so the next request gets the fresh token); or passed on
# the second 401 of a retried request.
RefusalOutcome = Literal["retried", "not_replayable", "refused_again"]


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.limited = Counter(
            "bff_proxy_limited",
            "Proxied requests refused or cut off by a bound or a deadline, by which one.",
            ["bound"],
            registry=registry,
        )
        self.token_refusals = Counter(
            "bff_proxy_token_refusals",
            "Vendor 401s to proxied requests, by what the proxy did: retried with a fresh "
            "token, not retried (the body could not be sent again), or refused again "
            "after the retry (passed on).",
            ["outcome"],
            registry=registry,
        )

    def refused(self, outcome: RefusalOutcome) -> None:
        self.token_refusals.labels(outcome).inc()
