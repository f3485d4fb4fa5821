"""Mappings: list them (filtered, by page), map or unmap one pair, replace a user's set."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import InvalidInputError
from bff.operations import audit
from bff.operations.live import Live, mappings_removed
from bff.store.database import Database, conflict_means_exists
from bff.store.models import SubTenant, User, UserScope
from bff.store.users import get_user, map_user, unknown_pairs, unmap_user, user_scopes

Pair = tuple[str, str]
MAX_PAIRS_PER_USER = 10_000
PAGE_SIZE = 50
_MAX_FILTER = 254


@dataclasses.dataclass(frozen=True)
class Replaced:
    added: list[Pair]
    removed: list[Pair]
    pairs: list[Pair]


@dataclasses.dataclass(frozen=True)
class Mapping:
    email: str
    tenant_id: str
    sub_tenant_id: str


@dataclasses.dataclass(frozen=True)
class MappingPage:
    items: list[Mapping]
    next_page: int | None


def parse_pair(tenant_id: object, sub_tenant_id: object) -> Pair:
    if not isinstance(tenant_id, str):
        raise InvalidInputError("tenant_id must be a string", field="tenant_id")
    if not isinstance(sub_tenant_id, str):
        raise InvalidInputError("sub_tenant_id must be a string", field="sub_tenant_id")
    return identifiers.tenant_id(tenant_id), identifiers.sub_tenant_id(sub_tenant_id)


async def list_for_user(database: Database, email: str) -> list[Pair]:
    async with database.session() as db:
        user = await get_user(db, identifiers.email(email))
        return await user_scopes(db, user.id)


async def list_mappings(
    database: Database,
    *,
    email: str = "",
    tenant_id: str = "",
    sub_tenant_id: str = "",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> MappingPage:
    """Mappings ordered by e-mail and pair; ``email`` matches part of the address, the
    ids match exactly. Blank filters match everything."""
    page = max(1, page)
    where: list[ColumnElement[bool]] = []
    needle = email.strip().lower()[:_MAX_FILTER]
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(User.email.like(f"%{escaped}%", escape="\\"))
    if tenant_id.strip():
        where.append(UserScope.tenant_id == tenant_id.strip()[:_MAX_FILTER])
    if sub_tenant_id.strip():
        where.append(UserScope.sub_tenant_id == sub_tenant_id.strip()[:_MAX_FILTER])
    query = (
        select(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
        .join(User, User.id == UserScope.user_id)
        .where(*where)
        .order_by(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
        .offset((page - 1) * page_size)
        .limit(page_size + 1)
    )
    async with database.session() as db:
        rows = (await db.execute(query)).all()
    items = [Mapping(e, t, s) for e, t, s in rows[:page_size]]
    return MappingPage(items, page + 1 if len(rows) > page_size else None)


async def map_pair(
    database: Database,
    actor: str,
    email: str,
    tenant_id: str,
    sub_tenant_id: str,
    *,
    create_pair: bool = True,
) -> bool:
    """Map a user to a pair, creating the pair if new (``bff users map``) unless
    ``create_pair`` is false (the console: a typo must not make a sub-tenant). False
    when the mapping existed already."""
    email = identifiers.email(email)
    pair = parse_pair(tenant_id, sub_tenant_id)
    with conflict_means_exists(f"{email} is already mapped to {pair[0]}/{pair[1]}"):
        async with database.session() as db:
            user = await get_user(db, email)
            if not create_pair and await db.get(SubTenant, pair) is None:
                raise InvalidInputError(
                    f"no pair ({pair[0]}, {pair[1]}); create the tenant and sub-tenant first",
                    field="sub_tenant_id",
                )
            created = await map_user(db, user, *pair)
            if created:
                await audit.record(db, actor, "mapping.add", f"{email} {pair[0]}/{pair[1]}")
    return created


async def unmap_pair(
    database: Database,
    actor: str,
    email: str,
    pair: Pair,
    *,
    live: Live | None = None,
) -> bool:
    """Remove one mapping and end the sessions showing it, at once. False if there was
    none."""
    email = identifiers.email(email)
    pair = parse_pair(*pair)
    async with database.session() as db:
        user = await get_user(db, email)
        removed = await unmap_user(db, user, *pair)
        if removed:
            await audit.record(db, actor, "mapping.remove", f"{email} {pair[0]}/{pair[1]}")
        user_id = user.id
    await mappings_removed(live, [(user_id, *pair)] if removed else [])
    return removed


async def replace_for_user(
    database: Database,
    actor: str,
    email: str,
    pairs: Iterable[Pair],
    *,
    live: Live | None = None,
) -> Replaced:
    """Make ``pairs`` the user's complete set; every pair must exist already. A removed
    pair ends the sessions showing it, at once."""
    email = identifiers.email(email)
    wanted = sorted(set(pairs))
    if len(wanted) > MAX_PAIRS_PER_USER:
        raise InvalidInputError(f"at most {MAX_PAIRS_PER_USER} pairs per user", field="items")
    with conflict_means_exists(f"the mappings of {email} changed meanwhile; try again"):
        async with database.session() as db:
            user = await get_user(db, email)
            await _require_pairs(db, wanted)
            current = set(await user_scopes(db, user.id))
            added = [pair for pair in wanted if pair not in current]
            removed = sorted(current - set(wanted))
            for pair in removed:
                await unmap_user(db, user, *pair)
            db.add_all(UserScope(user_id=user.id, tenant_id=t, sub_tenant_id=s) for t, s in added)
            if added or removed:
                await audit.record(
                    db,
                    actor,
                    "mapping.replace",
                    email,
                    {"added": [list(p) for p in added], "removed": [list(p) for p in removed]},
                )
            user_id = user.id
    await mappings_removed(live, [(user_id, t, s) for t, s in removed])
    return Replaced(added, removed, wanted)


async def _require_pairs(db: AsyncSession, pairs: list[Pair]) -> None:
    missing = await unknown_pairs(db, pairs)
    if missing:
        tenant, sub = missing[0]
        raise InvalidInputError(
            f"no pair ({tenant}, {sub}); create the tenant and sub-tenant first", field="items"
        )
