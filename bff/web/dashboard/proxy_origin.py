"""``BFF_PROXY_ORIGIN``: a second origin that serves the vendor proxy and nothing else.

Under ``proxy`` delivery the vendor's dashboard HTML and scripts come through bff.
Served from bff's own origin, that code could read bff's pages, their CSRF tokens
and forms, and act as the signed-in user. With a proxy origin (a second host name
reaching the same server) it runs there instead, where the browser's same-origin
policy keeps it from everything of bff's: bff's own origin answers 404 under
``/vendor/``, and the proxy origin answers only

- ``GET /handoff?ticket=T``: redeems a handoff into a proxy session
  (:mod:`bff.web.dashboard.handoff`);
- ``/vendor/…``: the proxy (:class:`~bff.web.dashboard.proxy.VendorProxy`),
  authorized by the proxy session alone;
- ``GET /static/bff.css``: the stylesheet of the proxy's framed notices;

and 404 to everything else: no sign-in, dashboard, console, account page or API.

:class:`ProxyOriginDispatch` picks the app by the request's ``Host``: host name and
port as ``BFF_PROXY_ORIGIN`` gives them (a missing port is the scheme's default). The
scheme is not compared: behind a TLS-terminating reverse proxy requests arrive as
plain http, and bff's pages must never be served on the proxy host whatever scheme a
request claims. It is the outermost layer of bff's middleware: none of bff's
request handling (its sessions, CSRF checks, security headers) runs for the proxy
origin, which has its own small stack (:class:`ProxyOriginApp`: a request id, the
access record and its own headers, in one layer; ``/vendor/…`` reaches the proxy
without a router in between).

Responses on the proxy origin (:meth:`ProxyOriginApp._headers`) may be framed by bff's
origin (the dashboard page) and, for a proxy session handed over by a partner's
embed session, by that partner's page above it too: ``frame-ancestors`` binds every
ancestor. ``'self'`` stays, for the vendor's own nested frames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.logs import request_id
from bff.metrics import HttpMetrics
from bff.resources import static_dir
from bff.settings import Settings
from bff.web.access_log import access_log_enabled, log_access
from bff.web.dashboard.handoff import HANDOFF_PATH, GrantFor, ProxySessions, partner_origin
from bff.web.dashboard.proxy import VendorProxy
from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.vendor_target import PREFIX
from bff.web.security import HSTS

_DEFAULT_PORTS = {"http": 80, "https": 443}
_VENDOR = PREFIX + "/"
# The distinct policies (and partner origins) whose framed form is remembered.
_REMEMBERED_POLICIES = 64
_REMEMBERED_HOSTS = 64
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Everything the proxy origin answers itself (its 404s, the handoff's redirects).
_OWN_POLICY = (
    b"default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    b"frame-ancestors 'none'"
)


def host_and_port(origin: str) -> tuple[str, int]:
    parts = urlsplit(origin)
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[parts.scheme]


class ProxyOriginDispatch:
    """Pure ASGI: requests whose ``Host`` is the proxy origin's go to ``proxy_app``,
    all others (and the lifespan) to ``app``."""

    def __init__(self, app: ASGIApp, proxy_app: ASGIApp, proxy_origin: str) -> None:
        self.app = app
        self.proxy_app = proxy_app
        self.host, self.port = host_and_port(proxy_origin)
        # A Host without a port means the default port of the proxy origin's scheme.
        self.default_port = _DEFAULT_PORTS[urlsplit(proxy_origin).scheme]
        # The answer per distinct Host value: a server sees the same few again and again.
        self._hosts: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._is_proxy_host(scope):
            await self.proxy_app(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_proxy_host(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"host":
                known = self._hosts.get(value)
                if known is None:
                    host, port = _split_host(value.decode("latin-1"))
                    known = (host, self.default_port if port is None else port) == (
                        self.host,
                        self.port,
                    )
                    if len(self._hosts) >= _REMEMBERED_HOSTS:
                        self._hosts.clear()
                    self._hosts[value] = known
                return known
        return False


def _split_host(host: str) -> tuple[str, int | None]:
    """``Host`` as (lower-case name, port); the port None when absent or malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    if not port:
        return name, None
    return (name, int(port)) if port.isascii() and port.isdigit() else (name, -1)


class ProxyOriginApp:
    """Pure ASGI, the proxy origin's whole stack around its routes. Per request: a fresh
    request id (logs carry it, the response names it; no client's own id is kept), the
    request counted in ``bff_http_requests`` and bff's access record, and the proxy
    origin's headers (:meth:`_headers`). ``/vendor/…`` goes straight to the proxy (an
    unhandled error answers 500 if nothing was sent, as Starlette's would); everything
    else (the handoff, the stylesheet, 404s, websockets) to ``routes``."""

    def __init__(
        self,
        routes: ASGIApp,
        proxy: ASGIApp,
        metrics: HttpMetrics,
        settings: Settings,
        public_origin: str,
    ) -> None:
        self.routes = routes
        self.proxy = proxy
        self.metrics = metrics
        self.public_origin = public_origin.encode("ascii")
        self.always = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
        ]
        if (settings.proxy_origin or "").startswith("https://"):
            self.always.append((b"strict-transport-security", HSTS.encode()))
        self._always_names = frozenset(name for name, _ in self.always)
        # Who may frame a response, per partner origin (None: bff's origin alone).
        self._framers: dict[str | None, list[bytes]] = {}
        # Policies with those framers added, per (policy, partner origin).
        self._policies: dict[tuple[bytes, str | None], bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.routes(scope, receive, send)
            return
        rid = os.urandom(8).hex()
        request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode("ascii"))
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_wrapped(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                partner = partner_origin(scope.get("state", {}))
                message["headers"] = self._headers(message.get("headers", ()), partner, rid_header)
            await send(message)

        direct = scope["path"].startswith(_VENDOR) and not scope.get("root_path")
        try:
            if direct:
                # What Mount(PREFIX) would add, without the router around it.
                scope["app_root_path"] = ""
                scope["root_path"] = PREFIX
                try:
                    await self.proxy(scope, receive, send_wrapped)
                except Exception:
                    if not responded:
                        failed = PlainTextResponse("Internal Server Error", 500)
                        await failed(scope, receive, send_wrapped)
                    raise
            else:
                await self.routes(scope, receive, send_wrapped)
        finally:
            seconds = time.perf_counter() - started
            route = PREFIX if direct else getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, route, status, seconds)
            if access_log_enabled():
                log_access(scope, method, route, status, seconds)

    def _headers(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        partner: str | None,
        rid_header: tuple[bytes, bytes],
    ) -> list[tuple[bytes, bytes]]:
        """Framing by ``'self'`` also admits bff's origin (and ``partner``);
        ``X-Frame-Options`` goes, since it cannot name another origin; a response without
        a policy gets one that allows nothing; ``nosniff``, ``no-referrer``, ``no-store``
        and (https) HSTS always; the request id, replacing any other."""
        out: list[tuple[bytes, bytes]] = []
        has_policy = False
        present: set[bytes] | None = None
        for name, value in headers:
            if name == b"x-frame-options" or name == b"x-request-id":
                continue
            if name == b"content-security-policy":
                has_policy = True
                value = self._policy(value, partner)
            elif name in self._always_names:
                if present is None:
                    present = set()
                present.add(name)
            out.append((name, value))
        if not has_policy:
            out.append((b"content-security-policy", _OWN_POLICY))
        if present is None:
            out += self.always
        else:
            out.extend(header for header in self.always if header[0] not in present)
        out.append(rid_header)
        return out

    def _policy(self, policy: bytes, partner: str | None) -> bytes:
        key = (policy, partner)
        found = self._policies.get(key)
        if found is None:
            found = with_frame_ancestors(policy, self._framers_of(partner))
            if len(self._policies) >= _REMEMBERED_POLICIES:
                self._policies.clear()
            self._policies[key] = found
        return found

    def _framers_of(self, partner: str | None) -> list[bytes]:
        framers = self._framers.get(partner)
        if framers is None:
            framers = [self.public_origin]
            if partner is not None:
                framers.append(partner.encode("ascii", "replace"))
            if len(self._framers) >= _REMEMBERED_POLICIES:
                self._framers.clear()
            self._framers[partner] = framers
        return framers


def with_frame_ancestors(policy: bytes, framers: list[bytes]) -> bytes:
    """``policy`` with ``framers`` added to a ``frame-ancestors`` that allows ``'self'``."""
    directives = []
    for directive in policy.split(b";"):
        sources = directive.split()
        if sources[:1] == [b"frame-ancestors"] and b"'self'" in sources[1:]:
            directive = b" ".join([*sources, *(f for f in framers if f not in sources)])
        directives.append(directive.strip())
    return b"; ".join(directive for directive in directives if directive)


async def _stylesheet(request: Request) -> Response:
    return FileResponse(static_dir() / "bff.css", media_type="text/css")


async def _plain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)


def create_proxy_origin_app(
    settings: Settings,
    grant_for: GrantFor,
    metrics: ProxyMetrics,
    http_metrics: HttpMetrics,
    limits: ProxyLimits | None = None,
) -> ProxyOriginApp:
    """The proxy origin's app: the handoff, the proxy, and 404 for everything else."""
    sessions = ProxySessions(settings)
    proxy = VendorProxy(sessions.target, sessions.authorizer(grant_for), metrics, limits)
    routes = Starlette(
        routes=[
            Route(HANDOFF_PATH, sessions.redeem, methods=["GET"], name="proxy:handoff"),
            Mount(PREFIX, app=proxy, name="proxy:vendor"),
            Route("/static/bff.css", _stylesheet, methods=["GET"], name="proxy:stylesheet"),
        ],
        exception_handlers={HTTPException: _plain},
    )
    return ProxyOriginApp(routes, proxy, http_metrics, settings, sessions.public_origin)


def serve_proxy_origin(
    app: Starlette,
    settings: Settings,
    grant_for: GrantFor,
    metrics: ProxyMetrics,
    http_metrics: HttpMetrics,
    limits: ProxyLimits | None = None,
) -> None:
    """Send ``app``'s requests for ``BFF_PROXY_ORIGIN`` to the proxy origin's app, before
    any of ``app``'s own middleware."""
    assert settings.proxy_origin is not None
    proxy_app = create_proxy_origin_app(settings, grant_for, metrics, http_metrics, limits)
    app.add_middleware(ProxyOriginDispatch, proxy_app=proxy_app, proxy_origin=settings.proxy_origin)
