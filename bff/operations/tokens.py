"""A vendor connection's tokens, as the admin sees them: test a connection for one pair,
refresh a key now, evict it. Each asks the broker (its cache and single flight, as a
user's page would) and is audited; an outcome never holds the token itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from bff import identifiers
from bff.broker import TokenBroker
from bff.broker.scope import TokenScope, VendorToken
from bff.broker.snapshot import SHARED
from bff.errors import NotFoundError, UpstreamRejected, UpstreamUnavailable
from bff.operations import audit
from bff.store.database import Database
from bff.store.models import SubTenant


@dataclasses.dataclass(frozen=True)
class TokenOutcome:
    """What the broker answered for one key; never the token itself."""

    scope: TokenScope
    status: Literal["ok", "refused", "unavailable"]
    message: str = ""
    expires_at: datetime | None = None
    obtained_at: datetime | None = None
    retry_after: int | None = None


async def known_pairs(database: Database, limit: int = 500) -> list[tuple[str, str]]:
    """Some existing (tenant, sub-tenant) pairs, to pick one for a test."""
    async with database.session() as db:
        rows = await db.execute(
            select(SubTenant.tenant_id, SubTenant.id)
            .order_by(SubTenant.tenant_id, SubTenant.id)
            .limit(limit)
        )
        return [(tenant, sub) for tenant, sub in rows.all()]


def token_scope(connection_id: str, tenant_id: str, sub_tenant_id: str) -> TokenScope:
    """A validated key; both tenant fields empty name the connection-wide token."""
    connection_id = identifiers.tenant_id(connection_id, "connection id")
    if not tenant_id.strip() and not sub_tenant_id.strip():
        return TokenScope(connection_id, SHARED, SHARED)
    return TokenScope(
        connection_id, identifiers.tenant_id(tenant_id), identifiers.sub_tenant_id(sub_tenant_id)
    )


def _target(scope: TokenScope) -> str:
    pair = (
        "connection-wide"
        if scope.tenant_id == SHARED
        else f"{scope.tenant_id}/{scope.sub_tenant_id}"
    )
    return f"{scope.connection_id} {pair}"


def _require(broker: TokenBroker, connection_id: str) -> None:
    if not broker.has_connection(connection_id):
        raise NotFoundError(f"no usable vendor connection {connection_id}")


async def _outcome(
    scope: TokenScope, obtain: Callable[[TokenScope], Awaitable[VendorToken]]
) -> TokenOutcome:
    try:
        token = await obtain(scope)
    except UpstreamRejected as exc:
        return TokenOutcome(scope, "refused", str(exc))
    except UpstreamUnavailable as exc:
        retry = max(1, round(exc.retry_after or 1))
        return TokenOutcome(scope, "unavailable", str(exc), retry_after=retry)
    return TokenOutcome(scope, "ok", expires_at=token.expires_at, obtained_at=token.obtained_at)


async def try_connection(
    database: Database, actor: str, broker: TokenBroker, scope: TokenScope
) -> TokenOutcome:
    """Ask the broker for the pair's token, as a user's page would (cache, single flight)."""
    _require(broker, scope.connection_id)
    outcome = await _outcome(scope, broker.get)
    async with database.session() as db:
        await audit.record(
            db, actor, "connection.test", _target(scope), {"outcome": outcome.status}
        )
    return outcome


async def refresh_token(
    database: Database, actor: str, broker: TokenBroker, scope: TokenScope
) -> TokenOutcome:
    """Renew one key's token now (see :meth:`TokenBroker.refresh`)."""
    _require(broker, scope.connection_id)
    outcome = await _outcome(scope, broker.refresh)
    async with database.session() as db:
        await audit.record(db, actor, "token.refresh", _target(scope), {"outcome": outcome.status})
    return outcome


async def evict_token(
    database: Database, actor: str, broker: TokenBroker, scope: TokenScope
) -> int:
    """Drop one key's token and remembered failure; the next request obtains a new one."""
    dropped = await broker.purge(
        connection_id=scope.connection_id,
        tenant_id=scope.tenant_id,
        sub_tenant_id=scope.sub_tenant_id,
    )
    async with database.session() as db:
        await audit.record(db, actor, "token.evict", _target(scope), {"dropped": dropped})
    return dropped
