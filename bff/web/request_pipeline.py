"""One pure-ASGI layer for what bff's own origin does on every request, with one
``send`` wrapper.

In order, per HTTP request:

1. the CSP nonce (:mod:`bff.web.security`);
2. the body limit on ``receive`` (:mod:`bff.web.body_limit`);
3. the cross-site refusal of unsafe requests and the pre-session cookie
   (:mod:`bff.web.auth.csrf`);
4. the sessions from the cookies (:mod:`bff.web.auth.guard`);
5. on the response's start: the security headers, a new pre-session cookie, the
   deletion of stale session cookies.

One layer rather than four because each of them wrapped ``send``, parsed the request
headers and allocated per request; the concepts stay in their modules, as plain
functions and classes this calls. The request id, the metrics and the access record
come from :class:`~bff.web.middleware.RequestContextMiddleware`, just outside, which
covers the proxy origin too.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.settings import Settings
from bff.web.auth.cookies import parse_cookie_header
from bff.web.auth.csrf import UNSAFE_METHODS, CrossSiteCheck
from bff.web.auth.guard import HANDLE_HEADER, SessionResolver
from bff.web.body_limit import limit_body
from bff.web.security import SecurityHeaders

_HANDLE = HANDLE_HEADER.lower().encode("latin-1")
# The request headers any step reads, found in one pass.
_READ = frozenset(
    {
        b"cookie",
        b"content-length",
        b"transfer-encoding",
        b"origin",
        b"sec-fetch-site",
        b"host",
        _HANDLE,
    }
)
RawHeaders = list[tuple[bytes, bytes]]


class RequestPipeline:
    """Pure ASGI: bff's own origin's per-request steps, one ``send`` wrapper for all."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        body_limit_exempt: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.body_limit_exempt = body_limit_exempt
        self.security = SecurityHeaders(settings)
        self.cross_site = CrossSiteCheck(settings)
        self.sessions = SessionResolver(settings)
        self.presession_name = self.cross_site.cookies.presession_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send, None)

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, on_start: Callable[[Message], None] | None
    ) -> None:
        """One HTTP request; ``on_start`` sees the response's start message last, so the
        layer just outside needs no ``send`` wrapper of its own."""
        headers = _read(scope["headers"])
        nonce = _nonce()
        state = scope.setdefault("state", {})
        state["csp_nonce"] = nonce
        method: str = scope["method"]
        path: str = scope["path"]
        if (b"content-length" in headers or b"transfer-encoding" in headers) and not (
            path.startswith(self.body_limit_exempt)
        ):
            receive = limit_body(receive, headers.get(b"content-length"))
        stale: list[str] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._response_headers(
                    message.get("headers", ()), path, nonce, state, stale
                )
                if on_start is not None:
                    on_start(message)
            await send(message)

        if method in UNSAFE_METHODS and self._refuses(scope, headers):
            origin = _text(headers.get(b"origin"))
            fetch_site = _text(headers.get(b"sec-fetch-site"))
            refusal = self.cross_site.refusal(scope, receive, origin=origin, fetch_site=fetch_site)
            await refusal(scope, receive, send_with_headers)
            return
        cookie = headers.get(b"cookie")
        sent = parse_cookie_header(cookie.decode("latin-1")) if cookie else {}
        self.cross_site.read_presession(state, sent.get(self.presession_name))
        stale = await self.sessions.resolve(
            state, sent, method=method, path=path, handle=_text(headers.get(_HANDLE))
        )
        await self.app(scope, receive, send_with_headers)

    def _refuses(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        return self.cross_site.refuses(
            scope["method"],
            origin=_text(headers.get(b"origin")),
            fetch_site=_text(headers.get(b"sec-fetch-site")),
            host=_text(headers.get(b"host")),
            scheme=scope.get("scheme", "http"),
        )

    def _response_headers(
        self,
        sent: Iterable[tuple[bytes, bytes]],
        path: str,
        nonce: str,
        state: dict[str, object],
        stale: list[str],
    ) -> RawHeaders:
        # A copy: a response object may be sent more than once.
        raw = list(sent)
        if stale:
            self.sessions.clear_stale(raw, stale)
        presession = self.cross_site.new_presession_cookie(state)
        if presession is not None:
            raw.append((b"set-cookie", presession))
        self.security.add_to(raw, path=path, nonce=nonce)
        return raw


def _read(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        if name in _READ and name not in found:
            found[name] = value
    return found


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _nonce() -> str:
    # secrets.token_urlsafe(16), without its two calls on every request.
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
