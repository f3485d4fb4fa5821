"""``bff check``: validate the vendor settings and call the vendor once for one pair
(twice with the per-pair step: the connection's credential, then the pair's token).

Prints the outcome and when the token expires — never a token, key or credential.
"""

from __future__ import annotations

from typing import TextIO

import httpx2
from prometheus_client import CollectorRegistry

from bff import identifiers
from bff.broker.broker import TokenBroker
from bff.broker.connectors import AnyConnector, PairTokenConnector, build_connector
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope
from bff.clock import Clock, SystemClock
from bff.errors import UpstreamError, UpstreamRejected, UpstreamUnavailable
from bff.settings import Settings

EXIT_OK = 0
EXIT_VENDOR_FAILURE = 1
_CONNECTION = "check"


async def run_check(
    settings: Settings,
    tenant_id: str,
    sub_tenant_id: str,
    out: TextIO,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> int:
    """Exit status 0 when the vendor issued a token, 1 when it did not.

    Bad settings raise :class:`~bff.errors.ConfigurationError` and bad ids
    :class:`~bff.errors.InvalidIdentifierError`, which the CLI reports itself.
    """
    scope = TokenScope(
        _CONNECTION, identifiers.tenant_id(tenant_id), identifiers.sub_tenant_id(sub_tenant_id)
    )
    clock = clock or SystemClock()
    upstream = settings.upstream
    connector = build_connector(upstream, clock)
    print(f"settings: ok ({_describe(connector)})", file=out)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=False) as client:
        broker = TokenBroker(
            {_CONNECTION: connector},
            client,
            BrokerMetrics(CollectorRegistry()),
            clock,
            # Exactly one call: no retries, no background refresh.
            policy=BrokerPolicy(attempts=1),
            timeout=upstream.timeout,
            max_concurrency=1,
            background=False,
        )
        try:
            token = await broker.get(scope)
        except UpstreamError as exc:
            print(f"vendor: FAILED — {exc}", file=out)
            print(f"hint: {_hint(exc)}", file=out)
            return EXIT_VENDOR_FAILURE
        finally:
            await broker.aclose()
    pair = f"({scope.tenant_id}, {scope.sub_tenant_id})"
    print(f"vendor: ok — issued a token for {pair}{_reach(connector)}", file=out)
    remaining = token.expires_at - token.obtained_at
    print(
        f"token expires: {token.expires_at.isoformat(timespec='seconds')} "
        f"(in {_duration(remaining.total_seconds())}, including the safety margin)",
        file=out,
    )
    return EXIT_OK


def _describe(connector: AnyConnector) -> str:
    if isinstance(connector, PairTokenConnector):
        return (
            f"{connector.kind}, {connector.inner.endpoint}; "
            f"per-pair token step: {connector.endpoint}, pair sent as {connector.style}"
        )
    return f"{connector.kind}, {connector.endpoint}"


def _reach(connector: AnyConnector) -> str:
    if isinstance(connector, PairTokenConnector):
        return " (for this pair only, bought with the connection's credential)"
    if connector.per_pair:
        return ""
    return (
        " (one token serves every pair on this connection: only proxy delivery may use it; "
        "BFF_UPSTREAM_PAIR_TOKEN_URL gives each pair its own)"
    )


def _hint(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamRejected):
        if exc.status == 400:
            return "the vendor rejected the request; check the tenant and sub-tenant ids"
        if exc.status in (404, 405):
            return (
                "the vendor has no such endpoint; check BFF_UPSTREAM_BASE_URL and the endpoint "
                "settings (BFF_UPSTREAM_AUTH_URL, BFF_UPSTREAM_WHOAMI_URL, "
                "BFF_UPSTREAM_PAIR_TOKEN_URL)"
            )
        return "the vendor refused our credentials; check BFF_UPSTREAM_API_KEY / _API_SECRET"
    assert isinstance(exc, UpstreamUnavailable)
    retry = f"; the vendor asked to retry in {exc.retry_after:.0f} s" if exc.retry_after else ""
    return f"the vendor is unavailable or misbehaving; check BFF_UPSTREAM_BASE_URL{retry}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
