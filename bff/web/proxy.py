"""``proxy`` delivery: the vendor dashboard served under the BFF's own ``/vendor/`` prefix.

The browser never holds a vendor token. Each request under the prefix is checked
by ``authorize`` (a signed-in session with a mapped scope), then forwarded to the
one vendor directory :class:`~bff.web.vendor_target.VendorTarget` allows, carrying
only an allowlist of harmless request headers plus ``Authorization: Bearer``
added here. The browser's cookies, credentials, tenant headers and hop-by-hop
headers never reach the vendor; the vendor's cookies and site-wide headers
(``Set-Cookie``, ``Clear-Site-Data``, HSTS) never reach the browser, and its
policy keeps every directive but ``frame-ancestors``. Bodies
stream both ways; redirects are rewritten under the prefix or refused.

The proxied pages run on the BFF's origin, so the vendor's dashboard code is
trusted like the BFF's own pages; the session cookie stays ``HttpOnly``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bff.logs import request_id
from bff.services import services
from bff.web.vendor_target import PREFIX, UnsafePath, VendorTarget

logger = logging.getLogger(__name__)

# Returns the vendor token for this request's session scope, or the response that refuses it.
Authorize = Callable[[Request], Awaitable["str | Response"]]

_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-length",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "range",
        "user-agent",
        "x-requested-with",
    }
)
_RESPONSE_HEADERS = frozenset(
    {
        "accept-ranges",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-range",
        "content-type",
        "etag",
        "last-modified",
        "retry-after",
        "vary",
    }
)
# Tenant data must never sit in a shared cache; the vendor page is framed only by our own
# page (a second policy header: browsers enforce every policy they get).
_ADDED_RESPONSE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
# The proxy's own failure pages show inside the dashboard iframe, so 'self' may frame them.
FRAMED_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class VendorProxy:
    """ASGI app for ``Mount(PREFIX, app=VendorProxy(...))``."""

    def __init__(self, target: VendorTarget | None, authorize: Authorize) -> None:
        self.target = target
        self.authorize = authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Websockets are not proxied: closing before accepting refuses the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        response = await self._forward(request, send)
        if response is not None:
            await response(scope, receive, send)

    async def _forward(self, request: Request, send: Send) -> Response | None:
        if self.target is None:
            return framed_page(
                request, 404, "No dashboard here", "The dashboard is not proxied by this server."
            )
        raw_rest = _raw_rest(request.scope)
        try:
            if raw_rest is None:
                raise UnsafePath("path outside the prefix")
            url = self.target.upstream_url(raw_rest, request.scope.get("query_string", b""))
        except UnsafePath:
            return framed_page(request, 400, "Bad request", "This dashboard address is not valid.")
        granted = await self.authorize(request)
        if isinstance(granted, Response):
            return granted
        upstream_request = httpx2.Request(
            request.method,
            url,
            headers=_request_headers(request, granted),
            content=_body(request) if _has_body(request) else None,
        )
        http = services(request).http
        try:
            upstream = await http.send(upstream_request, stream=True, follow_redirects=False)
        except httpx2.HTTPError as exc:
            logger.warning("vendor dashboard unreachable: %s", type(exc).__name__)
            return framed_page(
                request, 502, "Dashboard unreachable", "The dashboard could not be reached."
            )
        try:
            headers = self._response_headers(upstream, url)
            if headers is None:
                logger.warning("vendor dashboard redirected outside its directory; refused")
                return framed_page(
                    request, 502, "Dashboard not available", "The dashboard sent us elsewhere."
                )
            await send(
                {"type": "http.response.start", "status": upstream.status_code, "headers": headers}
            )
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await upstream.aclose()
        return None

    def _response_headers(
        self, upstream: httpx2.Response, url: httpx2.URL
    ) -> list[tuple[bytes, bytes]] | None:
        assert self.target is not None
        headers = [
            (name.lower(), value)
            for name, value in upstream.headers.raw
            if name.lower().decode("latin-1") in _RESPONSE_HEADERS
        ]
        for policy in upstream.headers.get_list("content-security-policy"):
            kept = _without_frame_ancestors(policy)
            if kept:
                headers.append((b"content-security-policy", kept.encode("latin-1")))
        location = upstream.headers.get("location")
        if location is not None:
            rewritten = self.target.browser_location(location, url)
            if rewritten is None:
                return None
            headers.append((b"location", rewritten.encode("latin-1")))
        headers.extend(_ADDED_RESPONSE_HEADERS)
        return headers


def framed_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    link: tuple[str, str] | None = None,
    retry_after: int | None = None,
) -> Response:
    """A notice shown inside the dashboard iframe: ``'self'`` may frame it (the default
    policy forbids framing), and its ``link`` opens in the top window."""
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": FRAMED_PAGE_CSP}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    context = {
        "title": title,
        "message": message,
        "link": link,
        "retry_after": retry_after,
        "request_id": request_id.get(),
    }
    return services(request).templates.TemplateResponse(
        request, "framed_notice.html", context, status_code=status, headers=headers
    )


def _without_frame_ancestors(policy: str) -> str:
    """The vendor's own policy still protects its page; only who may frame it is ours to say."""
    directives = [part.strip() for part in policy.split(";")]
    return "; ".join(
        part for part in directives if part and part.split()[0].lower() != "frame-ancestors"
    )


def _raw_rest(scope: Scope) -> str | None:
    """The still-encoded path after the prefix, as the browser sent it."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    prefix = PREFIX.encode("ascii") + b"/"
    if not raw.startswith(prefix):
        return None
    try:
        return raw[len(prefix) :].decode("ascii")
    except UnicodeDecodeError:
        return None


def _request_headers(request: Request, token: str) -> list[tuple[str, str]]:
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name in _REQUEST_HEADERS and not _is_connection_header(request, name)
    ]
    headers.append(("authorization", f"Bearer {token}"))
    return headers


def _is_connection_header(request: Request, name: str) -> bool:
    """Headers the browser named in ``Connection`` are hop-by-hop, whatever they are called."""
    listed = request.headers.get("connection", "")
    return name in {item.strip().lower() for item in listed.split(",")}


def _has_body(request: Request) -> bool:
    if request.method in _BODYLESS_METHODS:
        return False
    return "content-length" in request.headers or "transfer-encoding" in request.headers


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk
