"""The proxy's vendor client: a connection pool of its own, bytes passed through as they come.

:class:`AiohttpUpstream` is the production client: measured against a tuned httpx2
client behind the same proxy it serves 2-3 times the requests (``bench/README.md``,
"Proxy"). :class:`HttpxUpstream` sends through an httpx2 transport; ``create_app``
uses it when given a ``vendor_transport`` (tests that reach the vendor app
in-process), and the bench uses it for that comparison. Both keep no cookies,
follow no redirect, never decompress (the browser gets the vendor's bytes and
``Content-Encoding``) and add no header of their own but ``Host`` (and
``Content-Length`` or ``Transfer-Encoding`` for a body).

Their errors, translated here and nowhere else (the proxy answers 502 and 503)::

    VendorUnreachable        no connection, or the vendor broke off or went silent
     └── VendorPoolExhausted  no pooled connection came free in time
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx2
from yarl import URL

from bff.web.dashboard.proxy_limits import (
    VENDOR_CONNECT_TIMEOUT,
    VENDOR_KEEPALIVE_EXPIRY,
    VENDOR_POOL_TIMEOUT,
    VENDOR_READ_TIMEOUT,
    ProxyLimits,
)

# A request body: none, whole (it may be sent twice), or streamed.
Body = bytes | AsyncIterator[bytes] | None
RawHeaders = Sequence[tuple[bytes, bytes]]


# How many parsed URLs are kept, and the longest kept.
_REMEMBERED_URLS = 1024
_REMEMBERED_URL_LENGTH = 1024


class VendorUnreachable(Exception):
    """The vendor could not be reached, or broke off or went silent mid-answer."""


class VendorPoolExhausted(VendorUnreachable):
    """No connection of the proxy's pool came free in time."""


class UpstreamResponse(abc.ABC):
    """A vendor answer whose body has not been read yet."""

    status: int
    # As received: names in the vendor's case, repeated headers repeated.
    headers: RawHeaders

    @abc.abstractmethod
    async def next_chunk(self) -> bytes:
        """The body's next bytes as they arrive, ``b""`` at its end;
        :class:`VendorUnreachable` if it breaks off."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Give the connection back (or close it, when the body was not read to its end)."""


class UpstreamClient(abc.ABC):
    @abc.abstractmethod
    async def send(
        self, method: str, url: str, headers: list[tuple[str, str]], body: Body
    ) -> UpstreamResponse:
        """Send a request to ``url`` (already encoded, sent as it is); the answer once its
        head has arrived."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...


@asynccontextmanager
async def open_upstream(
    limits: ProxyLimits, transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[UpstreamClient]:
    """The production client, or an httpx2 one over ``transport`` when given."""
    client = AiohttpUpstream(limits) if transport is None else HttpxUpstream(limits, transport)
    try:
        yield client
    finally:
        await client.aclose()


class AiohttpUpstream(UpstreamClient):
    """aiohttp's client: one ``TCPConnector`` of ``limits.max_total`` connections."""

    def __init__(self, limits: ProxyLimits) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limits.max_total, limit_per_host=0, keepalive_timeout=VENDOR_KEEPALIVE_EXPIRY
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                # aiohttp's "connect" includes the wait for a pooled connection.
                connect=VENDOR_POOL_TIMEOUT + VENDOR_CONNECT_TIMEOUT,
                sock_connect=VENDOR_CONNECT_TIMEOUT,
                # Per read, as for httpx2; aiohttp has no write timeout of its own: a
                # vendor that stops taking a body answers nothing, so the read expires.
                sock_read=VENDOR_READ_TIMEOUT,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            raise_for_status=False,
        )
        # The proxy sends the same few dozen URLs again and again: parsed once each.
        self._urls: dict[str, URL] = {}

    async def send(
        self, method: str, url: str, headers: list[tuple[str, str]], body: Body
    ) -> UpstreamResponse:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = URL(url, encoded=True)
            if len(url) <= _REMEMBERED_URL_LENGTH:
                if len(self._urls) >= _REMEMBERED_URLS:
                    self._urls.clear()
                self._urls[url] = parsed
        try:
            response = await self._session.request(
                method,
                parsed,
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
            )
        except aiohttp.ClientError as exc:
            raise VendorUnreachable(type(exc).__name__) from exc
        except TimeoutError as exc:
            raise VendorUnreachable("timeout") from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()


class _AiohttpResponse(UpstreamResponse):
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.raw_headers

    async def next_chunk(self) -> bytes:
        try:
            return await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise VendorUnreachable(type(exc).__name__) from exc
        except TimeoutError as exc:
            raise VendorUnreachable("timeout") from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            # Unread bytes left on the connection: it cannot carry another request.
            self._response.close()


class HttpxUpstream(UpstreamClient):
    """An httpx2 client over ``transport`` (its default one when None)."""

    def __init__(
        self, limits: ProxyLimits, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self._client = httpx2.AsyncClient(
            transport=transport,
            timeout=limits.vendor_timeout(),
            limits=limits.vendor_pool(),
            follow_redirects=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def send(
        self, method: str, url: str, headers: list[tuple[str, str]], body: Body
    ) -> UpstreamResponse:
        request = httpx2.Request(method, httpx2.URL(url), headers=headers, content=body)
        # httpx2 adds these unless told otherwise; only the browser's may go.
        for name in ("accept", "accept-encoding", "user-agent"):
            if not any(sent == name for sent, _ in headers):
                request.headers.pop(name, None)
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
        except httpx2.PoolTimeout as exc:
            raise VendorPoolExhausted("no free connection") from exc
        except httpx2.HTTPError as exc:
            raise VendorUnreachable(type(exc).__name__) from exc
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()


class _HttpxResponse(UpstreamResponse):
    __slots__ = ("_chunks", "_response", "headers", "status")

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self._chunks = response.aiter_raw()
        self.status = response.status_code
        self.headers = response.headers.raw

    async def next_chunk(self) -> bytes:
        try:
            return await anext(self._chunks, b"")
        except httpx2.HTTPError as exc:
            raise VendorUnreachable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._response.aclose()
