"""The vendor side: connectors, the token cache and the broker (DESIGN §3)."""

from __future__ import annotations

import httpx2

from bff.broker.broker import ConnectionLoader, TokenBroker
from bff.broker.cache import InMemoryTokenCache, TokenCache
from bff.broker.connectors import Connector, build_connector
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import Clock, SystemClock
from bff.settings import Settings

__all__ = [
    "DEFAULT_CONNECTION",
    "BrokerPolicy",
    "ConnectionLoader",
    "Connector",
    "InMemoryTokenCache",
    "TokenBroker",
    "TokenCache",
    "TokenScope",
    "VendorToken",
    "create_broker",
]

DEFAULT_CONNECTION = "default"


def create_broker(
    settings: Settings,
    client: httpx2.AsyncClient,
    metrics: BrokerMetrics,
    clock: Clock | None = None,
    *,
    cache: TokenCache | None = None,
    policy: BrokerPolicy | None = None,
    background: bool = True,
    loader: ConnectionLoader | None = None,
) -> TokenBroker:
    """The broker for ``settings``: connection ``"default"`` from ``BFF_UPSTREAM_*``, if set.

    ``cache``: where tokens are kept (in this process's memory by default; a
    :class:`bff.shared.token_cache.RedisTokenCache` shares them across instances).
    ``loader``: reads one connection afresh, for changes another instance announces."""
    clock = clock or SystemClock()
    upstream = settings.upstream
    connections = {}
    if upstream.configured:
        connections[DEFAULT_CONNECTION] = build_connector(upstream, clock)
    return TokenBroker(
        connections,
        client,
        metrics,
        clock,
        cache=cache,
        policy=policy,
        timeout=upstream.timeout,
        max_concurrency=upstream.max_concurrency,
        background=background,
        loader=loader,
    )
