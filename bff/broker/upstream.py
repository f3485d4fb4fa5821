"""The one boundary where vendor HTTP becomes the bff error tree.

Connectors describe requests and read successful answers; everything that can go
wrong on the wire — timeouts, refused connections, statuses, bodies that are not
JSON — is translated here and nowhere else. Messages name the status and the
vendor's own message (redacted, truncated), never a header, a token or a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2

from bff.broker import retry
from bff.broker.connectors.base import VendorRequest
from bff.clock import Clock
from bff.errors import (
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from bff.logs import redact

_MAX_VENDOR_MESSAGE = 200
# A vendor that sets this on a 429 says the limit covers the whole API key, not one pair.
RATE_LIMIT_SCOPE_HEADER = "x-ratelimit-scope"
_CONNECTION_WIDE_SCOPES = frozenset({"global", "connection", "account", "key"})


class Gateway:
    """Sends :class:`VendorRequest` s through the shared client with an explicit deadline."""

    def __init__(
        self,
        client: httpx2.AsyncClient,
        clock: Clock,
        *,
        timeout: float,
        min_cooldown: float = 5.0,
        default_cooldown: float = 30.0,
        max_cooldown: float = 300.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._timeout = timeout
        self._min_cooldown = min_cooldown
        self._default_cooldown = default_cooldown
        self._max_cooldown = max_cooldown

    async def send(self, request: VendorRequest) -> Mapping[str, Any]:
        response = await self._exchange(request)
        if response.status_code // 100 == 2:
            return _json_object(response)
        raise self._error(response)

    async def _exchange(self, request: VendorRequest) -> httpx2.Response:
        try:
            # httpx timeouts bound each phase; this bounds the whole call, including a
            # vendor that trickles its answer and transports (ASGI) that have no timeouts.
            with anyio.fail_after(self._timeout):
                return await self._client.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    data=dict(request.form) if request.form is not None else None,
                    json=dict(request.json) if request.json is not None else None,
                    auth=httpx2.BasicAuth(*request.basic_auth) if request.basic_auth else None,
                    timeout=httpx2.Timeout(self._timeout),
                    follow_redirects=False,
                )
        except (TimeoutError, httpx2.TimeoutException) as exc:
            raise UpstreamTimeout(
                f"the vendor did not answer within {self._timeout:g} s ({type(exc).__name__})"
            ) from None
        except httpx2.TransportError as exc:
            raise UpstreamUnreachable(
                f"could not reach the vendor ({type(exc).__name__})"
            ) from None

    def _error(self, response: httpx2.Response) -> Exception:
        status = response.status_code
        message = vendor_message(response)
        said = f": {message}" if message else ""
        if status == 429:
            # Neither parse can raise: a 429 must stay a 429, never become a "bad
            # response" that counts toward opening the circuit.
            seconds = retry.retry_after(
                response.headers.get("retry-after"),
                message,
                now=self._clock.now(),
                default=self._default_cooldown,
                cap=self._max_cooldown,
                floor=self._min_cooldown,
                vendor_date=response.headers.get("date"),
            )
            scope = response.headers.get(RATE_LIMIT_SCOPE_HEADER, "").strip().lower()
            return UpstreamRateLimited(
                f"the vendor is rate limiting us (429){said}",
                status=status,
                vendor_message=message,
                retry_after=seconds,
                connection_wide=scope in _CONNECTION_WIDE_SCOPES,
            )
        if 400 <= status < 500:
            return UpstreamRejected(
                f"the vendor refused the request ({status}){said}",
                status=status,
                vendor_message=message,
            )
        return UpstreamBadResponse(
            f"the vendor answered {status}{said}", status=status, vendor_message=message
        )


def _json_object(response: httpx2.Response) -> Mapping[str, Any]:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise UpstreamBadResponse(
            f"the vendor answered {response.status_code} with a body that is not JSON ({kind})",
            status=response.status_code,
        ) from None
    if not isinstance(body, dict):
        raise UpstreamBadResponse(
            f"the vendor answered {response.status_code} with JSON that is not an object",
            status=response.status_code,
        )
    return body


def vendor_message(response: httpx2.Response) -> str | None:
    """The vendor's human-readable message from an error body, safe to show and log;
    ``None`` for any body it cannot read (never raises)."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    for name in ("message", "error_description", "error", "detail"):
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return redact(" ".join(value.split()))[:_MAX_VENDOR_MESSAGE]
    return None
