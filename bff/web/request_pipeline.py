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
covers the proxy origin too; when nothing sits between the two, this layer's ``send``
wrapper serves both (:class:`Exchange`).

The busy page, ``GET /``, goes straight to its route (:class:`_Direct`) when the router
would pick a plain ASGI endpoint for it, skipping Starlette's exception layer and the
router's walk; its errors still reach the app's exception handlers, through a copy of
that exception layer, exactly as they would have.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match, Route, Router
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


class Exchange:
    """One request's response as :class:`~bff.web.middleware.RequestContextMiddleware`
    needs it: the id header it adds and the status sent (None until the response
    starts)."""

    __slots__ = ("id_header", "status")

    def __init__(self, id_header: tuple[bytes, bytes] | None = None) -> None:
        self.id_header = id_header
        self.status: int | None = None


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
        self.direct = _Direct.find(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send, Exchange())

    async def serve(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        """One HTTP request; the response's start message gets ``exchange``'s id header
        and leaves its status there."""
        headers = _read(scope["headers"])
        nonce = _nonce()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
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
                    message.get("headers", ()), path, nonce, state, stale, exchange.id_header
                )
                exchange.status = message["status"]
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
        if (
            self.direct is not None
            and method == "GET"
            and path == "/"
            and not scope.get("root_path")
        ):
            await self.direct(scope, receive, send_with_headers, exchange)
        else:
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
        id_header: tuple[bytes, bytes] | None,
    ) -> RawHeaders:
        # A copy: a response object may be sent more than once.
        if id_header is None:
            raw = list(sent)
        else:
            # The request context's id replaces any of the route's.
            raw = [pair for pair in sent if pair[0] != b"x-request-id"]
            raw.append(id_header)
        if stale:
            self.sessions.clear_stale(raw, stale)
        presession = self.cross_site.new_presession_cookie(state)
        if presession is not None:
            raw.append((b"set-cookie", presession))
        self.security.add_to(raw, path=path, nonce=nonce)
        return raw


class _Direct:
    """``GET /`` straight to the route the router would pick for it, when that route's
    endpoint is a plain ASGI app: the scope gets what the router puts there (``router``,
    ``route``, ``endpoint``, ``path_params``), and an exception goes through a copy of
    Starlette's ``ExceptionMiddleware`` (the same handlers, the same lookup, the same
    ``Request``), to the same handler and response as on the usual way."""

    def __init__(self, errors: ExceptionMiddleware, router: Router, route: Route) -> None:
        self.router = router
        self.route = route
        self.endpoint = route.endpoint
        self.app = route.app
        self.errors = copy.copy(errors)
        self.errors.app = _raise_pending

    @classmethod
    def find(cls, app: ASGIApp) -> _Direct | None:
        if not isinstance(app, ExceptionMiddleware) or not isinstance(app.app, Router):
            return None
        router = app.app
        probe: Scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "root_path": "",
            "headers": [],
            "query_string": b"",
        }
        for route in router.routes:
            match, child = route.matches(probe)
            if match is Match.NONE:
                continue
            # The first route to match is the router's choice; only a plain ASGI endpoint
            # (no route function with its own Request and exception wrapper) goes direct.
            if (
                match is Match.FULL
                and isinstance(route, Route)
                and route.app is route.endpoint
                and child.get("path_params") == {}
            ):
                return cls(app, router, route)
            return None
        return None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> None:
        if "router" not in scope:
            scope["router"] = self.router
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        scope["path_params"] = {}
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if exchange.status is not None:
                raise  # the response has started: nothing a handler could send
            scope[_PENDING] = exc
            await self.errors(scope, receive, send)


_PENDING = "bff.pending_exception"


async def _raise_pending(scope: Scope, receive: Receive, send: Send) -> None:
    raise scope.pop(_PENDING)


def _read(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        if name in _READ and name not in found:
            found[name] = value
    return found


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _nonce() -> str:
    # 128 random bits; hex is a valid CSP nonce and costs a third of base64's encoding.
    return os.urandom(16).hex()
