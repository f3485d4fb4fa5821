"""Which (tenant, sub-tenant) a user may see: always the database's mappings, asked
every time a pair is used, never a value the browser sent or the session remembered."""

from __future__ import annotations

from sqlalchemy import select

from bff.store.database import Database
from bff.store.models import UserScope

Pair = tuple[str, str]


async def mapped_pairs(database: Database, user_id: int) -> list[Pair]:
    """The user's mapped pairs, in a stable order."""
    # One plain read on a pooled connection: every page view asks this, and an ORM
    # unit of work (begin, flush, commit) would double its cost for nothing.
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            select(UserScope.tenant_id, UserScope.sub_tenant_id)
            .where(UserScope.user_id == user_id)
            .order_by(UserScope.tenant_id, UserScope.sub_tenant_id)
        )
        return [(tenant, sub_tenant) for tenant, sub_tenant in rows.all()]


async def is_mapped(database: Database, user_id: int, pair: Pair) -> bool:
    async with database.session() as db:
        found = await db.scalar(
            select(UserScope.user_id).where(
                UserScope.user_id == user_id,
                UserScope.tenant_id == pair[0],
                UserScope.sub_tenant_id == pair[1],
            )
        )
    return found is not None


def parse_pair(value: object) -> Pair | None:
    """``"tenant/sub-tenant"`` from the scope switcher; ids cannot contain ``/``."""
    if not isinstance(value, str):
        return None
    tenant, slash, sub_tenant = value.partition("/")
    if not slash or not tenant or not sub_tenant:
        return None
    return tenant, sub_tenant
