"""Users, tenants and the mappings between them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import AlreadyExistsError, NotFoundError
from bff.store.models import SubTenant, Tenant, User, UserScope


async def add_user(
    session: AsyncSession, email: str, password_hash: str | None, *, is_admin: bool = False
) -> User:
    email = identifiers.email(email)
    if await find_user(session, email) is not None:
        raise AlreadyExistsError(f"a user {email} already exists")
    user = User(email=email, password_hash=password_hash, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, email: str) -> User | None:
    """The local user with this address. Partner apps' users are never found by address:
    nothing that signs in, maps or administers by e-mail can reach them."""
    return await session.scalar(
        select(User).where(User.email == email.strip().lower(), User.partner_app_id.is_(None))
    )


async def get_user(session: AsyncSession, email: str) -> User:
    user = await find_user(session, email)
    if user is None:
        raise NotFoundError(f"no user {email.strip().lower()}")
    return user


async def ensure_scope(
    session: AsyncSession, tenant_id: str, sub_tenant_id: str
) -> tuple[Tenant, SubTenant]:
    """The (tenant, sub-tenant) pair, created if new."""
    tenant_id = identifiers.tenant_id(tenant_id)
    sub_tenant_id = identifiers.sub_tenant_id(sub_tenant_id)
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        tenant = Tenant(id=tenant_id, name=tenant_id)
        session.add(tenant)
    sub_tenant = await session.get(SubTenant, (tenant_id, sub_tenant_id))
    if sub_tenant is None:
        sub_tenant = SubTenant(tenant_id=tenant_id, id=sub_tenant_id, name=sub_tenant_id)
        session.add(sub_tenant)
    await session.flush()
    return tenant, sub_tenant


async def map_user(session: AsyncSession, user: User, tenant_id: str, sub_tenant_id: str) -> bool:
    """Map ``user`` to the pair; returns False when the mapping already existed."""
    tenant, sub_tenant = await ensure_scope(session, tenant_id, sub_tenant_id)
    key = (user.id, tenant.id, sub_tenant.id)
    if await session.get(UserScope, key) is not None:
        return False
    session.add(UserScope(user_id=user.id, tenant_id=tenant.id, sub_tenant_id=sub_tenant.id))
    await session.flush()
    return True


async def unmap_user(session: AsyncSession, user: User, tenant_id: str, sub_tenant_id: str) -> bool:
    """Delete the mapping row only. A running server learns of it through
    :func:`bff.operations.mappings.unmap_pair`, which also ends the sessions using it;
    otherwise its caches keep the pair for up to their revalidation window."""
    result = await session.execute(
        delete(UserScope).where(
            UserScope.user_id == user.id,
            UserScope.tenant_id == tenant_id,
            UserScope.sub_tenant_id == sub_tenant_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def user_scopes(session: AsyncSession, user_id: int) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(UserScope.tenant_id, UserScope.sub_tenant_id)
        .where(UserScope.user_id == user_id)
        .order_by(UserScope.tenant_id, UserScope.sub_tenant_id)
    )
    return [(tenant, sub_tenant) for tenant, sub_tenant in rows.all()]


async def unknown_pairs(
    session: AsyncSession, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Those of ``pairs`` that are not an existing (tenant, sub-tenant), in order."""
    known: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), 500):  # a bounded IN list per query
        chunk = pairs[start : start + 500]
        rows = await session.execute(
            select(SubTenant.tenant_id, SubTenant.id).where(
                tuple_(SubTenant.tenant_id, SubTenant.id).in_(chunk)
            )
        )
        known.update((tenant, sub) for tenant, sub in rows.all())
    return [pair for pair in pairs if pair not in known]
