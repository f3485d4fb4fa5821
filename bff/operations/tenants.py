"""Tenants and sub-tenants: list, create, delete (refused while in use, unless cascading)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import AlreadyExistsError, InUseError, InvalidInputError, NotFoundError
from bff.operations import audit
from bff.operations.live import Live, mappings_removed
from bff.store.database import Database
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
    async with database.session() as db:
        if await db.get(Tenant, tenant_id) is not None:
            raise AlreadyExistsError(f"a tenant {tenant_id} already exists")
        db.add(Tenant(id=tenant_id, name=name))
        await audit.record(db, actor, "tenant.create", tenant_id, {"name": name})
    return TenantView(tenant_id, name, [])


async def create_sub_tenant(
    database: Database, actor: str, tenant_id: str, sub_tenant_id: str, name: str | None = None
) -> SubTenantView:
    tenant_id = identifiers.tenant_id(tenant_id)
    sub_tenant_id = identifiers.sub_tenant_id(sub_tenant_id)
    name = _name(name, sub_tenant_id)
    async with database.session() as db:
        if await db.get(Tenant, tenant_id) is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        if await db.get(SubTenant, (tenant_id, sub_tenant_id)) is not None:
            raise AlreadyExistsError(f"a sub-tenant {sub_tenant_id} of {tenant_id} already exists")
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


async def delete_tenant(
    database: Database,
    actor: str,
    tenant_id: str,
    *,
    cascade: bool = False,
    live: Live | None = None,
) -> None:
    """Delete a tenant and its sub-tenants; refused with :class:`InUseError` while
    mappings or partner apps use it, unless ``cascade`` (which removes those too)."""
    tenant_id = identifiers.tenant_id(tenant_id)
    async with database.session() as db:
        if await db.get(Tenant, tenant_id) is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        removed = await _guard_in_use(
            db,
            cascade,
            UserScope.tenant_id == tenant_id,
            PartnerAppScope.tenant_id == tenant_id,
            tenant_id,
        )
        await db.execute(delete(UserScope).where(UserScope.tenant_id == tenant_id))
        await db.execute(delete(PartnerAppScope).where(PartnerAppScope.tenant_id == tenant_id))
        await db.execute(delete(SubTenant).where(SubTenant.tenant_id == tenant_id))
        await db.execute(delete(Tenant).where(Tenant.id == tenant_id))
        await audit.record(
            db, actor, "tenant.delete", tenant_id, {"cascade": cascade, "mappings": len(removed)}
        )
    await mappings_removed(live, removed)


async def delete_sub_tenant(
    database: Database,
    actor: str,
    tenant_id: str,
    sub_tenant_id: str,
    *,
    cascade: bool = False,
    live: Live | None = None,
) -> None:
    tenant_id = identifiers.tenant_id(tenant_id)
    sub_tenant_id = identifiers.sub_tenant_id(sub_tenant_id)
    target = f"{tenant_id}/{sub_tenant_id}"
    async with database.session() as db:
        if await db.get(SubTenant, (tenant_id, sub_tenant_id)) is None:
            raise NotFoundError(f"no sub-tenant {sub_tenant_id} of {tenant_id}")
        user_match = (UserScope.tenant_id == tenant_id) & (UserScope.sub_tenant_id == sub_tenant_id)
        app_match = (PartnerAppScope.tenant_id == tenant_id) & (
            PartnerAppScope.sub_tenant_id == sub_tenant_id
        )
        removed = await _guard_in_use(db, cascade, user_match, app_match, target)
        await db.execute(delete(UserScope).where(user_match))
        await db.execute(delete(PartnerAppScope).where(app_match))
        await db.execute(
            delete(SubTenant).where(
                (SubTenant.tenant_id == tenant_id) & (SubTenant.id == sub_tenant_id)
            )
        )
        await audit.record(
            db, actor, "sub_tenant.delete", target, {"cascade": cascade, "mappings": len(removed)}
        )
    await mappings_removed(live, removed)


async def _guard_in_use(
    db: AsyncSession,
    cascade: bool,
    user_match: ColumnElement[bool],
    app_match: ColumnElement[bool],
    target: str,
) -> list[tuple[int, str, str]]:
    """The mappings a delete would remove; :class:`InUseError` when any use exists
    and the caller did not ask to cascade."""
    mapped = [
        (user_id, tenant, sub)
        for user_id, tenant, sub in (
            await db.execute(
                select(UserScope.user_id, UserScope.tenant_id, UserScope.sub_tenant_id).where(
                    user_match
                )
            )
        ).all()
    ]
    apps = await db.scalar(select(PartnerAppScope.partner_app_id).where(app_match).limit(1))
    if (mapped or apps is not None) and not cascade:
        uses = []
        if mapped:
            uses.append(f"{len(mapped)} mapping(s)")
        if apps is not None:
            uses.append("partner apps")
        raise InUseError(
            f"{target} is used by {' and '.join(uses)}; delete with cascade to remove them"
        )
    return mapped
