"""``create_app(settings)``: the whole application, built declaratively.

The lifespan opens two vendor clients, each with its own connection pool: one for
the broker's token calls, one for the proxy's forwarded requests, so proxied
traffic (however slow its browsers) never makes a token call wait for a connection.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx2
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bff.broker import create_broker
from bff.broker.metrics import BrokerMetrics
from bff.clock import Clock, SystemClock
from bff.crypto import SecretBox
from bff.logs import register_secret
from bff.metrics import HttpMetrics
from bff.operations.connections import connection_loader, load_connections
from bff.resources import static_dir
from bff.settings import Settings, check_connection_wide_delivery
from bff.shared.redis_link import open_link
from bff.shared.token_cache import RedisTokenCache
from bff.store.database import Database
from bff.store.schema import prepare_schema
from bff.web import api_docs, health, template_helpers
from bff.web.account import pages as account_pages
from bff.web.admin import api as admin_api
from bff.web.admin import mappings as admin_mappings
from bff.web.admin import pages as admin_pages
from bff.web.admin import partner_apps_api
from bff.web.auth import oidc_signin, signin
from bff.web.auth.access import Mappings
from bff.web.auth.guard import EXCEPTION_HANDLERS as AUTH_EXCEPTION_HANDLERS
from bff.web.auth.metrics import AuthMetrics
from bff.web.auth.services import open_auth
from bff.web.dashboard import page as dashboard_page
from bff.web.dashboard.delivery import warn_about_delivery
from bff.web.dashboard.proxy_limits import ProxyLimits
from bff.web.dashboard.proxy_metrics import ProxyMetrics
from bff.web.dashboard.proxy_origin import serve_proxy_origin
from bff.web.dashboard.upstream_client import open_upstream
from bff.web.dashboard.vendor_target import PREFIX
from bff.web.errors import EXCEPTION_HANDLERS, server_error
from bff.web.middleware import RequestContextMiddleware
from bff.web.partner import routes as partner_routes
from bff.web.partner.auth import open_partner
from bff.web.request_pipeline import RequestPipeline
from bff.web.security import with_security_headers
from bff.web.services import Services
from bff.web.template_helpers import PageMemo


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    vendor_transport: httpx2.AsyncBaseTransport | None = None,
    proxy_limits: ProxyLimits | None = None,
) -> Starlette:
    """Build the app. ``vendor_transport`` lets tests reach a vendor app in-process (both
    vendor clients then share it, the proxy's through httpx2 instead of aiohttp);
    ``proxy_limits`` replaces the proxy's bounds."""
    _register_secrets(settings)
    # Settings.from_env checks this too; settings built in code must not skip it.
    check_connection_wide_delivery(settings.upstream, settings.dashboard_delivery)
    clock = clock or SystemClock()
    registry = CollectorRegistry()
    templates = template_helpers.create_templates()
    auth_metrics = AuthMetrics(registry)
    broker_metrics = BrokerMetrics(registry)
    proxy_limits = proxy_limits or ProxyLimits()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        warn_about_delivery(settings)
        database = Database.for_settings(settings)
        try:
            await prepare_schema(database)
            async with (
                httpx2.AsyncClient(
                    transport=vendor_transport,
                    timeout=httpx2.Timeout(settings.upstream.timeout),
                    limits=_broker_pool(settings),
                    follow_redirects=False,
                    cookies=_refuse_all_cookies(),
                ) as broker_http,
                open_upstream(proxy_limits, vendor_transport) as proxy_http,
                open_link(settings.redis_url, registry) as shared,
                open_auth(settings, database, clock, auth_metrics, shared=shared) as (
                    sessions,
                    auth,
                ),
            ):
                # With Redis, tokens are shared by every instance, and so are connection changes.
                broker = create_broker(
                    settings,
                    broker_http,
                    broker_metrics,
                    clock,
                    cache=None
                    if shared is None
                    else RedisTokenCache(shared, SecretBox(settings.encryption_keys), clock),
                    loader=None
                    if shared is None
                    else connection_loader(
                        database, SecretBox(settings.encryption_keys), settings, clock
                    ),
                )
                secret_box = SecretBox(settings.encryption_keys)
                try:
                    # After the schema is ready; a stored "default" replaces the settings' one.
                    stored = await load_connections(database, secret_box, settings, clock)
                    for connection_id, connector in stored.items():
                        await broker.replace_connection(connection_id, connector)
                    # Full GCs skip start-up's objects; once, since frozen objects are never freed.
                    if not gc.get_freeze_count():
                        gc.freeze()
                    yield {
                        "services": Services(
                            settings=settings,
                            clock=clock,
                            registry=registry,
                            templates=templates,
                            pages=PageMemo(templates),
                            secret_box=secret_box,
                            database=database,
                            http=proxy_http,
                            sessions=sessions,
                            mappings=Mappings(database, clock, revocations=auth.revocations),
                            auth=auth,
                            broker=broker,
                            partner=open_partner(settings, clock, shared),
                            shared=shared,
                        )
                    }
                finally:
                    await broker.aclose()
        finally:
            await database.dispose()

    proxy_metrics = ProxyMetrics(registry)
    # Both origins' requests are counted in one family.
    http_metrics = HttpMetrics(registry)
    routes = [
        # The dashboard first: routes are matched in order, and it is the busy one.
        *dashboard_page.routes(settings, proxy_metrics, proxy_limits),
        *health.routes,
        *signin.routes,
        *oidc_signin.routes,
        *admin_pages.routes,
        *account_pages.routes,
        *admin_api.routes,
        *partner_apps_api.routes,
        *api_docs.routes,
        *partner_routes.routes,
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContextMiddleware, metrics=http_metrics),
            Middleware(
                RequestPipeline,
                settings=settings,
                # The CSV imports read their (larger) bodies against their own limit.
                body_limit_exempt=(f"{PREFIX}/", admin_api.IMPORT_PATH, admin_mappings.IMPORT_PATH),
            ),
        ],
        exception_handlers={
            **EXCEPTION_HANDLERS,
            **AUTH_EXCEPTION_HANDLERS,
            # Starlette runs the 500 handler outside the middleware above.
            Exception: with_security_headers(server_error, settings),
        },
        lifespan=lifespan,
    )
    if settings.proxy_origin is not None:
        # Requests for BFF_PROXY_ORIGIN reach its own proxy-only app, never bff's pages.
        serve_proxy_origin(
            app, settings, dashboard_page.proxy_grant, proxy_metrics, http_metrics, proxy_limits
        )
    return app


def _register_secrets(settings: Settings) -> None:
    for value in (
        *settings.secret_keys,
        *settings.encryption_keys,
        settings.upstream.api_key,
        settings.upstream.api_secret,
        settings.oidc.client_secret if settings.oidc else None,
    ):
        register_secret(value)


def _broker_pool(settings: Settings) -> httpx2.Limits:
    """The broker runs at most ``max_concurrency`` token calls at once; room for twice
    that covers a call that needs a second request (the per-pair step) without a wait."""
    connections = 2 * settings.upstream.max_concurrency
    return httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)


def _refuse_all_cookies() -> CookieJar:
    """The vendor client keeps no cookies: one proxied user's vendor cookie must never
    ride along on another user's or the broker's requests."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
