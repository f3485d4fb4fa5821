"""What sign-in needs at run time, opened once by the lifespan."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2

from bff.clock import Clock
from bff.settings import Settings
from bff.shared.redis_link import RedisLink
from bff.shared.revocations import Revocations
from bff.store.database import Database
from bff.web.auth.cookies import CookieJar
from bff.web.auth.metrics import AuthMetrics
from bff.web.auth.oidc import OIDCClient
from bff.web.auth.password_checks import PasswordChecks
from bff.web.auth.ratelimit import LoginRateLimiter
from bff.web.auth.sessions import SessionStore

OIDC_TIMEOUT = 10.0
OIDC_CALLBACK_PATH = "/login/oidc/callback"


@dataclasses.dataclass
class AuthServices:
    cookies: CookieJar
    limiter: LoginRateLimiter
    password_checks: PasswordChecks
    metrics: AuthMetrics
    oidc: OIDCClient | None
    # The revocation broadcast, with BFF_REDIS_URL: the mappings cache listens to it too.
    revocations: Revocations | None = None


@asynccontextmanager
async def open_auth(
    settings: Settings,
    database: Database,
    clock: Clock,
    metrics: AuthMetrics,
    *,
    oidc_transport: httpx2.AsyncBaseTransport | None = None,
    shared: RedisLink | None = None,
) -> AsyncIterator[tuple[SessionStore, AuthServices]]:
    """The session store (sweeping expired sessions while open) and the sign-in services.
    With ``shared``, revocations are broadcast and the sign-in limits counted in Redis."""
    revocations = None if shared is None else Revocations(shared)
    sessions = SessionStore(
        database,
        clock,
        idle_seconds=settings.session_idle_seconds,
        max_seconds=settings.session_max_seconds,
        metrics=metrics,
        revocations=revocations,
    )
    async with AsyncExitStack() as stack:
        oidc = None
        if settings.oidc is not None:
            # Its own client: the vendor client's transport and limits are the vendor's.
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    transport=oidc_transport,
                    timeout=httpx2.Timeout(OIDC_TIMEOUT),
                    follow_redirects=False,
                )
            )
            oidc = OIDCClient(
                settings.oidc,
                http,
                redirect_uri=settings.public_url.rstrip("/") + OIDC_CALLBACK_PATH,
                clock=clock,
            )
        await stack.enter_async_context(sessions.housekeeping())
        yield (
            sessions,
            AuthServices(
                cookies=CookieJar(settings),
                limiter=LoginRateLimiter(clock, shared=shared),
                password_checks=PasswordChecks(gauge=metrics.password_checks),
                metrics=metrics,
                oidc=oidc,
                revocations=revocations,
            ),
        )
