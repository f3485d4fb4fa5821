"""``bff check``: validate the vendor settings and call the vendor once for one pair.

Prints the outcome and when the token expires — never the token itself.
"""

from __future__ import annotations

from typing import TextIO

import httpx2
from prometheus_client import CollectorRegistry

from bff import identifiers
from bff.broker.broker import TokenBroker
from bff.broker.connectors import build_connector
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
    print(f"settings: ok ({connector.kind}, {connector.endpoint})", file=out)
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
    shared = "" if connector.per_pair else " (one token serves every pair on this connection)"
    print(f"vendor: ok — issued a token for {pair}{shared}", file=out)
    remaining = token.expires_at - token.obtained_at
    print(
        f"token expires: {token.expires_at.isoformat(timespec='seconds')} "
        f"(in {_duration(remaining.total_seconds())}, including the safety margin)",
        file=out,
    )
    return EXIT_OK


def _hint(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamRejected):
        if exc.status == 400:
            return "the vendor rejected the request; check the tenant and sub-tenant ids"
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
