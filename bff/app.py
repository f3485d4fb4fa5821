"""``create_app(settings)``: the whole application, built declaratively."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bff.clock import Clock, SystemClock
from bff.crypto import SecretBox
from bff.logs import register_secret
from bff.metrics import HttpMetrics
from bff.resources import static_dir, templates_dir
from bff.services import Services
from bff.settings import Settings
from bff.store.database import Database
from bff.store.schema import prepare_schema
from bff.web import health
from bff.web.errors import EXCEPTION_HANDLERS
from bff.web.middleware import RequestContextMiddleware


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    vendor_transport: httpx2.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the app. ``vendor_transport`` lets tests reach a vendor app in-process."""
    _register_secrets(settings)
    registry = CollectorRegistry()
    templates = Jinja2Templates(directory=templates_dir())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        database = Database(settings.database_url)
        try:
            await prepare_schema(database)
            async with httpx2.AsyncClient(
                transport=vendor_transport,
                timeout=httpx2.Timeout(settings.upstream.timeout),
                follow_redirects=False,
            ) as http:
                yield {
                    "services": Services(
                        settings=settings,
                        clock=clock or SystemClock(),
                        registry=registry,
                        templates=templates,
                        secret_box=SecretBox(settings.encryption_keys),
                        database=database,
                        http=http,
                    )
                }
        finally:
            await database.dispose()

    routes = [
        *health.routes,
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware, metrics=HttpMetrics(registry))],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


def _register_secrets(settings: Settings) -> None:
    for value in (
        *settings.secret_keys,
        *settings.encryption_keys,
        settings.upstream.api_key,
        settings.upstream.api_secret,
        settings.oidc.client_secret if settings.oidc else None,
    ):
        register_secret(value)
