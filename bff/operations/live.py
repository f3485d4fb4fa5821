"""What a running server holds that an operation must update after its commit."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Protocol


class SessionRevoker(Protocol):
    """The part of :class:`bff.web.auth.sessions.SessionStore` operations need."""

    async def revoke_user(self, user_id: int) -> int: ...

    async def revoke_scope(self, user_id: int, tenant_id: str, sub_tenant_id: str) -> int: ...


class MappingCache(Protocol):
    """The part of :class:`bff.web.auth.access.Mappings` operations need."""

    def forget(self, user_id: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class Live:
    """The running app's session store and mapping cache; absent in another process."""

    sessions: SessionRevoker
    mappings: MappingCache


async def user_changed(live: Live | None, user_id: int) -> None:
    """A user was disabled or deleted: every session ends, cached pairs are dropped."""
    if live is None:
        return
    live.mappings.forget(user_id)
    await live.sessions.revoke_user(user_id)


async def mappings_removed(live: Live | None, removed: Iterable[tuple[int, str, str]]) -> None:
    """Mappings were removed: forget the users' pairs, end the sessions showing them."""
    if live is None:
        return
    removed = list(removed)
    for user_id in {user_id for user_id, _, _ in removed}:
        live.mappings.forget(user_id)
    for user_id, tenant_id, sub_tenant_id in removed:
        await live.sessions.revoke_scope(user_id, tenant_id, sub_tenant_id)
