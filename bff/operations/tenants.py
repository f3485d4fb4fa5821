"""Tenants and sub-tenants: list, create, rename, delete (refused while in use, unless
cascading).

Two requests creating the same row at once both pass the existence check; the
loser's insert then breaks a unique constraint. :func:`conflict_means_exists`
turns that ``IntegrityError`` into :class:`AlreadyExistsError`, here at the
operations boundary, so it is a 409 like the check's own answer and not a 500.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import AlreadyExistsError, InUseError, InvalidInputError, NotFoundError
from bff.operations import audit
from bff.operations.live import Live, mappings_removed, pairs_removed, partner_app_cut_off
from bff.store.database import Database, conflict_means_exists
from bff.store.models import PartnerAppScope, SubTenant, Tenant, UserScope

MAX_NAME_LENGTH = 200


@dataclasses.dataclass(frozen=True)
class SubTenantView:
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class TenantView:
    id: str
    name: str
    sub_tenants: list[SubTenantView]


@dataclasses.dataclass(frozen=True)
class Usage:
    """What deleting a tenant or sub-tenant would take with it."""

    sub_tenants: int
    mappings: int
    partner_app_pairs: int

    @property
    def in_use(self) -> bool:
        return bool(self.mappings or self.partner_app_pairs)


def _name(value: str | None, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInputError("name must be a string", field="name")
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name is longer than {MAX_NAME_LENGTH} characters", field="name")
    if any(ord(char) < 32 for char in value):
        raise InvalidInputError("name contains control characters", field="name")
    return value or default


async def list_tenants(database: Database) -> list[TenantView]:
    async with database.session() as db:
        tenants = (await db.scalars(select(Tenant).order_by(Tenant.id))).all()
        subs = (
            await db.scalars(select(SubTenant).order_by(SubTenant.tenant_id, SubTenant.id))
        ).all()
    by_tenant: dict[str, list[SubTenantView]] = {}
    for sub in subs:
        by_tenant.setdefault(sub.tenant_id, []).append(SubTenantView(sub.id, sub.name))
    return [TenantView(t.id, t.name, by_tenant.get(t.id, [])) for t in tenants]


async def create_tenant(
    database: Database, actor: str, tenant_id: str, name: str | None = None
) -> TenantView:
    tenant_id = identifiers.tenant_id(tenant_id)
    name = _name(name, tenant_id)
    exists = f"a tenant {tenant_id} already exists"
    with conflict_means_exists(exists):
        async with database.session() as db:
            if await db.get(Tenant, tenant_id) is not None:
                raise AlreadyExistsError(exists)
            db.add(Tenant(id=tenant_id, name=name))
            await audit.record(db, actor, "tenant.create", tenant_id, {"name": name})
    return TenantView(tenant_id, name, [])


async def create_sub_tenant(
    database: Database, actor: str, tenant_id: str, sub_tenant_id: str, name: str | None = None
) -> SubTenantView:
    tenant_id = identifiers.tenant_id(tenant_id)
    sub_tenant_id = identifiers.sub_tenant_id(sub_tenant_id)
    name = _name(name, sub_tenant_id)
    exists = f"a sub-tenant {sub_tenant_id} of {tenant_id} already exists"
    with conflict_means_exists(exists):
        async with database.session() as db:
            if await db.get(Tenant, tenant_id) is None:
                raise NotFoundError(f"no tenant {tenant_id}")
            if await db.get(SubTenant, (tenant_id, sub_tenant_id)) is not None:
                raise AlreadyExistsError(exists)
            db.add(SubTenant(tenant_id=tenant_id, id=sub_tenant_id, name=name))
            await audit.record(
                db, actor, "sub_tenant.create", f"{tenant_id}/{sub_tenant_id}", {"name": name}
            )
    return SubTenantView(sub_tenant_id, name)


async def rename_tenant(database: Database, actor: str, tenant_id: str, name: str) -> None:
    tenant_id = identifiers.tenant_id(tenant_id)
    name = _name(name, tenant_id)
    async with database.session() as db:
        tenant = await db.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        tenant.name = name
        await audit.record(db, actor, "tenant.rename", tenant_id, {"name": name})


async def rename_sub_tenant(
    database: Database, actor: str, tenant_id: str, sub_tenant_id: str, name: str
) -> None:
    tenant_id = identifiers.tenant_id(tenant_id)
    sub_tenant_id = identifiers.sub_tenant_id(sub_tenant_id)
    name = _name(name, sub_tenant_id)
    async with database.session() as db:
        sub = await db.get(SubTenant, (tenant_id, sub_tenant_id))
        if sub is None:
            raise NotFoundError(f"no sub-tenant {sub_tenant_id} of {tenant_id}")
        sub.name = name
        await audit.record(
            db, actor, "sub_tenant.rename", f"{tenant_id}/{sub_tenant_id}", {"name": name}
        )


@dataclasses.dataclass(frozen=True)
class _Key:
    """A tenant (``sub_tenant_id`` None) or one sub-tenant, with the rows that use it."""

    tenant_id: str
    sub_tenant_id: str | None

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.sub_tenant_id}" if self.sub_tenant_id else self.tenant_id

    @property
    def users(self) -> ColumnElement[bool]:
        match = UserScope.tenant_id == self.tenant_id
        return (
            match
            if self.sub_tenant_id is None
            else match & (UserScope.sub_tenant_id == self.sub_tenant_id)
        )

    @property
    def apps(self) -> ColumnElement[bool]:
        match = PartnerAppScope.tenant_id == self.tenant_id
        return (
            match
            if self.sub_tenant_id is None
            else match & (PartnerAppScope.sub_tenant_id == self.sub_tenant_id)
        )

    @property
    def subs(self) -> ColumnElement[bool]:
        match = SubTenant.tenant_id == self.tenant_id
        return match if self.sub_tenant_id is None else match & (SubTenant.id == self.sub_tenant_id)

    async def require(self, db: AsyncSession) -> None:
        if self.sub_tenant_id is None:
            if await db.get(Tenant, self.tenant_id) is None:
                raise NotFoundError(f"no tenant {self.tenant_id}")
        elif await db.get(SubTenant, (self.tenant_id, self.sub_tenant_id)) is None:
            raise NotFoundError(f"no sub-tenant {self.sub_tenant_id} of {self.tenant_id}")


async def usage(database: Database, tenant_id: str, sub_tenant_id: str | None = None) -> Usage:
    """What deleting the tenant (``sub_tenant_id`` None) or the sub-tenant would remove."""
    tenant_id = identifiers.tenant_id(tenant_id)
    key = _Key(
        tenant_id, None if sub_tenant_id is None else identifiers.sub_tenant_id(sub_tenant_id)
    )
    async with database.session() as db:
        await key.require(db)
        subs = await db.scalar(select(func.count()).select_from(SubTenant).where(key.subs))
        mapped = await db.scalar(select(func.count()).select_from(UserScope).where(key.users))
        apps = await db.scalar(select(func.count()).select_from(PartnerAppScope).where(key.apps))
    return Usage(subs or 0, mapped or 0, apps or 0)


async def delete_tenant(
    database: Database,
    actor: str,
    tenant_id: str,
    *,
    cascade: bool = False,
    live: Live | None = None,
) -> None:
    """Delete a tenant and its sub-tenants; refused with :class:`InUseError` while
    mappings or partner apps use it, unless ``cascade`` (which removes those too).
    Sessions showing a removed mapping end and the tenant's vendor tokens are dropped."""
    await _delete(database, actor, _Key(identifiers.tenant_id(tenant_id), None), cascade, live)


async def delete_sub_tenant(
    database: Database,
    actor: str,
    tenant_id: str,
    sub_tenant_id: str,
    *,
    cascade: bool = False,
    live: Live | None = None,
) -> None:
    """:func:`delete_tenant` for one sub-tenant."""
    key = _Key(identifiers.tenant_id(tenant_id), identifiers.sub_tenant_id(sub_tenant_id))
    await _delete(database, actor, key, cascade, live)


async def _delete(
    database: Database, actor: str, key: _Key, cascade: bool, live: Live | None
) -> None:
    action = "tenant.delete" if key.sub_tenant_id is None else "sub_tenant.delete"
    async with database.session() as db:
        await key.require(db)
        await _guard_in_use(db, cascade, key)
        # What is deleted is what the sessions are ended for: RETURNING, not the rows read
        # by the guard, so a mapping added meanwhile is caught too (and refused without
        # a cascade, which rolls everything back).
        removed = [
            (user_id, tenant, sub)
            for user_id, tenant, sub in await db.execute(
                delete(UserScope)
                .where(key.users)
                .returning(UserScope.user_id, UserScope.tenant_id, UserScope.sub_tenant_id)
            )
        ]
        apps = set(
            await db.scalars(
                delete(PartnerAppScope).where(key.apps).returning(PartnerAppScope.partner_app_id)
            )
        )
        if (removed or apps) and not cascade:
            raise InUseError(f"{key} came into use meanwhile; delete with cascade to remove it")
        await db.execute(delete(SubTenant).where(key.subs))
        if key.sub_tenant_id is None:
            await db.execute(delete(Tenant).where(Tenant.id == key.tenant_id))
        await audit.record(
            db, actor, action, str(key), {"cascade": cascade, "mappings": len(removed)}
        )
    await mappings_removed(live, removed)
    for app_id in sorted(apps):  # their embed sessions may show a removed pair
        await partner_app_cut_off(live, app_id)
    await pairs_removed(live, key.tenant_id, key.sub_tenant_id)


async def _guard_in_use(db: AsyncSession, cascade: bool, key: _Key) -> None:
    """:class:`InUseError` when mappings or partner apps use the pairs and the caller
    did not ask to cascade."""
    rows = await db.execute(
        select(UserScope.user_id, UserScope.tenant_id, UserScope.sub_tenant_id).where(key.users)
    )
    mapped = [(user_id, tenant, sub) for user_id, tenant, sub in rows.all()]
    apps = await db.scalar(select(func.count()).select_from(PartnerAppScope).where(key.apps)) or 0
    if (mapped or apps) and not cascade:
        uses = []
        if mapped:
            uses.append(f"{len(mapped)} mapping(s)")
        if apps:
            uses.append(f"{apps} pair(s) of partner apps")
        raise InUseError(
            f"{key} is used by {' and '.join(uses)}; delete with cascade to remove them"
        )
