from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Collection, Iterable, Iterator

from sqlalchemy import Executable, event, select
from sqlalchemy.orm import Session

from bff.store.database import Database
from bff.store.models import AuditEntry, Base, User, UserScope
from bff.store.users import add_user, ensure_scope, map_user

ACTOR = "root@example.com"


@dataclasses.dataclass
class FakeLive:
    """Records what an operation asked of the running server."""

    revoked_users: list[int] = dataclasses.field(default_factory=list)
    revoked_scopes: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    forgotten: list[int] = dataclasses.field(default_factory=list)
    revoked_partner_apps: list[int] = dataclasses.field(default_factory=list)
    purged_pairs: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)

    async def revoke_user(self, user_id: int) -> int:
        self.revoked_users.append(user_id)
        return 0

    async def revoke_scope(self, user_id: int, tenant_id: str, sub_tenant_id: str) -> int:
        self.revoked_scopes.append((user_id, tenant_id, sub_tenant_id))
        return 0

    async def revoke_partner_app(self, partner_app_id: int) -> int:
        self.revoked_partner_apps.append(partner_app_id)
        return 0

    async def forget(self, user_ids: Collection[int]) -> None:
        self.forgotten.extend(sorted(user_ids))

    async def purge_pairs(self, tenant_id: str, sub_tenant_id: str | None = None) -> int:
        self.purged_pairs.append((tenant_id, sub_tenant_id))
        return 0


async def seed(
    database: Database,
    users: Iterable[str] = (),
    pairs: Iterable[tuple[str, str]] = (),
    mapped: Iterable[tuple[str, str, str]] = (),
) -> dict[str, int]:
    ids = {}
    async with database.session() as db:
        for email in users:
            ids[email] = (await add_user(db, email, None)).id
        for pair in pairs:
            await ensure_scope(db, *pair)
        for email, tenant, sub in mapped:
            user = await db.get(User, ids[email])
            assert user is not None
            await map_user(db, user, tenant, sub)
    return ids


async def all_mappings(database: Database) -> list[tuple[str, str, str]]:
    async with database.session() as db:
        rows = await db.execute(
            select(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
            .join(User, User.id == UserScope.user_id)
            .order_by(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
        )
        return [(e, t, s) for e, t, s in rows.all()]


async def audit_actions(database: Database) -> list[str]:
    async with database.session() as db:
        return list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


@contextlib.contextmanager
def racing_insert(database: Database, model: type[Base], statement: Executable) -> Iterator[None]:
    """Lose a race on purpose: just before the first flush that would insert a ``model``
    row (after the operation's existence check), another connection commits
    ``statement``, so the operation's insert breaks a constraint."""
    fired = False

    def before_flush(session: Session, context: object, instances: object) -> None:
        nonlocal fired
        if fired or not any(isinstance(row, model) for row in session.new):
            return
        fired = True
        # Runs inside the async session's greenlet, so the sync API drives the async driver.
        with database.engine.sync_engine.begin() as connection:
            connection.execute(statement)

    event.listen(Session, "before_flush", before_flush)
    try:
        yield
    finally:
        event.remove(Session, "before_flush", before_flush)
    assert fired, f"no {model.__name__} row was inserted"
