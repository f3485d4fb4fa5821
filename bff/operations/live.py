"""What a running server holds that an operation must update after its commit."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Protocol


class SessionRevoker(Protocol):
    """The part of :class:`bff.web.auth.sessions.SessionStore` operations need."""

    async def revoke_user(self, user_id: int) -> int: ...

    async def revoke_scope(self, user_id: int, tenant_id: str, sub_tenant_id: str) -> int: ...

    async def revoke_partner_app(self, partner_app_id: int) -> int: ...


class MappingCache(Protocol):
    """The part of :class:`bff.web.auth.access.Mappings` operations need."""

    async def forget(self, user_ids: Collection[int]) -> None: ...


class TokenPurger(Protocol):
    """The part of :class:`bff.broker.TokenBroker` operations need."""

    async def purge_pairs(self, tenant_id: str, sub_tenant_id: str | None = None) -> int: ...


@dataclasses.dataclass(frozen=True)
class Live:
    """The running app's session store, mapping cache and token broker; absent in
    another process. The store and the cache also tell every other process that hears
    the revocation broadcast (:mod:`bff.shared.revocations`)."""

    sessions: SessionRevoker
    mappings: MappingCache
    tokens: TokenPurger | None = None


async def user_changed(live: Live | None, user_id: int) -> None:
    """A user was disabled or deleted: every session ends, cached pairs are dropped."""
    if live is None:
        return
    await live.mappings.forget([user_id])
    await live.sessions.revoke_user(user_id)


async def mappings_removed(live: Live | None, removed: Iterable[tuple[int, str, str]]) -> None:
    """Mappings were removed: forget the users' pairs, end the sessions showing them."""
    if live is None:
        return
    removed = list(removed)
    await live.mappings.forget({user_id for user_id, _, _ in removed})
    for user_id, tenant_id, sub_tenant_id in removed:
        await live.sessions.revoke_scope(user_id, tenant_id, sub_tenant_id)


async def pairs_removed(live: Live | None, tenant_id: str, sub_tenant_id: str | None) -> None:
    """A tenant (``sub_tenant_id`` None) or one sub-tenant is gone: its vendor tokens go too."""
    if live is None or live.tokens is None:
        return
    await live.tokens.purge_pairs(tenant_id, sub_tenant_id)


async def partner_app_cut_off(live: Live | None, partner_app_id: int) -> None:
    """A partner app was revoked or got a new secret: its embed sessions end at once."""
    if live is None:
        return
    await live.sessions.revoke_partner_app(partner_app_id)
