"""What the lifespan opens once and every route shares."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from bff.broker import TokenBroker
from bff.clock import Clock
from bff.crypto import SecretBox
from bff.operations.live import Live
from bff.settings import Settings
from bff.shared.redis_link import RedisLink
from bff.store.database import Database
from bff.web.auth.access import Mappings
from bff.web.auth.services import AuthServices
from bff.web.auth.sessions import SessionStore
from bff.web.dashboard.upstream_client import UpstreamClient

if TYPE_CHECKING:  # both import this module (PageMemo through the session helpers)
    from bff.web.partner.auth import PartnerServices
    from bff.web.template_helpers import PageMemo


@dataclasses.dataclass
class Services:
    settings: Settings
    clock: Clock
    registry: CollectorRegistry
    templates: Jinja2Templates
    # Signed-in pages rendered once per (session, context); see PageMemo.
    pages: PageMemo
    secret_box: SecretBox
    database: Database
    # The proxy's vendor client; the broker's token calls have their own (own pool), so
    # proxied traffic never makes them wait for a connection.
    http: UpstreamClient
    sessions: SessionStore
    mappings: Mappings
    auth: AuthServices
    broker: TokenBroker
    partner: PartnerServices
    # The link to Redis (BFF_REDIS_URL) that shares state across processes; None without it.
    shared: RedisLink | None = None

    def live(self) -> Live:
        """What an operation run in this server must update after its commit."""
        return Live(self.sessions, self.mappings, self.broker)


def services(request: Request) -> Services:
    """The app's services, from the lifespan state."""
    # Straight from the scope: ``request.state`` builds a wrapper object per access.
    found: Services = request.scope["state"]["services"]
    return found
