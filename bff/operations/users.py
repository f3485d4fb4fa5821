"""Users: create (with a password or a one-time set-password token), list, update, delete."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlencode

import anyio
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import InvalidInputError, NotFoundError
from bff.operations import audit
from bff.operations.live import Live, user_changed
from bff.passwords import check_strength, hash_password
from bff.store.database import Database
from bff.store.models import SetPasswordToken, User
from bff.store.users import add_user, get_user

PAGE_SIZE = 50
SET_PASSWORD_LIFETIME = timedelta(hours=24)
_MAX_QUERY = 254
_LINK_INVALID = "this set-password link is unknown or has expired"


@dataclasses.dataclass(frozen=True)
class UserView:
    id: int
    email: str
    is_admin: bool
    disabled: bool


@dataclasses.dataclass(frozen=True)
class CreatedUser:
    user: UserView
    # The one-time set-password token, when no password was given; shown once.
    set_password_token: str | None


@dataclasses.dataclass(frozen=True)
class UserPage:
    items: list[UserView]
    next_page: int | None


def _view(user: User) -> UserView:
    return UserView(user.id, user.email, user.is_admin, user.disabled)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_password_url(public_url: str, token: str) -> str:
    """The one-time link a new user opens to choose a password (console and API alike)."""
    return f"{public_url.rstrip('/')}/account/set-password?{urlencode({'token': token})}"


async def create_user(
    database: Database,
    actor: str,
    email: str,
    *,
    is_admin: bool = False,
    password: str | None = None,
    now: datetime,
) -> CreatedUser:
    """A new local user. Without a password, a set-password token valid 24 h is made;
    only its hash is stored."""
    email = identifiers.email(email)
    password_hash = None
    if password is not None:
        check_strength(password, email)
        password_hash = await _hash(password)
    token = None
    async with database.session() as db:
        user = await add_user(db, email, password_hash, is_admin=is_admin)
        if password_hash is None:
            token = secrets.token_urlsafe(32)
            db.add(
                SetPasswordToken(
                    token_hash=_token_hash(token),
                    user_id=user.id,
                    expires_at=now + SET_PASSWORD_LIFETIME,
                )
            )
        await audit.record(
            db,
            actor,
            "user.create",
            email,
            {"is_admin": is_admin, "with_password": password_hash is not None},
        )
        view = _view(user)
    return CreatedUser(view, token)


async def set_password_token_owner(database: Database, token: str, *, now: datetime) -> str:
    """The e-mail of the user a set-password token is for, without redeeming it;
    :class:`NotFoundError` when it is unknown, used or expired."""
    async with database.session() as db:
        return (await _token_user(db, token, now)).email


async def set_password_with_token(
    database: Database, token: str, password: str, *, now: datetime
) -> UserView:
    """Redeem a one-time set-password token: once, before it expires, for an enabled user."""
    async with database.session() as db:
        user = await _token_user(db, token, now)
        check_strength(password, user.email)
        password_hash = await _hash(password)
        # Claim the token by deleting it: of two redeems racing, only one deletes a row.
        claimed = await db.execute(
            delete(SetPasswordToken).where(SetPasswordToken.token_hash == _token_hash(token))
        )
        if not getattr(claimed, "rowcount", 0):
            raise NotFoundError(_LINK_INVALID)
        user.password_hash = password_hash
        await db.execute(delete(SetPasswordToken).where(SetPasswordToken.user_id == user.id))
        await audit.record(db, user.email, "user.set_password", user.email)
        return _view(user)


async def _token_user(db: AsyncSession, token: str, now: datetime) -> User:
    row = await db.get(SetPasswordToken, _token_hash(token))
    user = None if row is None or row.expires_at <= now else await db.get(User, row.user_id)
    if user is None or user.disabled:
        raise NotFoundError(_LINK_INVALID)
    return user


async def _hash(password: str) -> str:
    # Argon2 takes a few hundred milliseconds of CPU: never on the event loop.
    return await anyio.to_thread.run_sync(hash_password, password)


async def list_users(
    database: Database, *, q: str = "", page: int = 1, page_size: int = PAGE_SIZE
) -> UserPage:
    """Users ordered by e-mail (its unique index), ``q`` matching part of the address."""
    page = max(1, page)
    query = select(User).where(User.partner_app_id.is_(None))
    needle = q.strip().lower()[:_MAX_QUERY]
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email.like(f"%{escaped}%", escape="\\"))
    query = query.order_by(User.email).offset((page - 1) * page_size).limit(page_size + 1)
    async with database.session() as db:
        users = list((await db.scalars(query)).all())
    items = [_view(user) for user in users[:page_size]]
    return UserPage(items, page + 1 if len(users) > page_size else None)


async def count_users(database: Database) -> int:
    async with database.session() as db:
        count = select(func.count()).select_from(User).where(User.partner_app_id.is_(None))
        return int(await db.scalar(count) or 0)


async def get_user_view(database: Database, email: str) -> UserView:
    async with database.session() as db:
        return _view(await get_user(db, identifiers.email(email)))


async def update_user(
    database: Database,
    actor: str,
    email: str,
    *,
    disabled: bool | None = None,
    is_admin: bool | None = None,
    live: Live | None = None,
) -> UserView:
    """Disable or enable a user, or change the admin flag. Disabling ends every session
    at once. Nobody disables or demotes themselves (no admin can lock everyone out)."""
    email = identifiers.email(email)
    if email == actor and (disabled is True or is_admin is False):
        raise InvalidInputError("you cannot disable yourself or remove your own admin flag")
    async with database.session() as db:
        user = await get_user(db, email)
        changes: dict[str, object] = {}
        if disabled is not None and disabled != user.disabled:
            user.disabled = disabled
            changes["disabled"] = disabled
        if is_admin is not None and is_admin != user.is_admin:
            user.is_admin = is_admin
            changes["is_admin"] = is_admin
        if changes:
            await audit.record(db, actor, "user.update", email, changes)
        view = _view(user)
    if changes.get("disabled") is True or changes.get("is_admin") is False:
        # A demoted admin's sessions carry the old flag; ending them is the safe side.
        await user_changed(live, view.id)
    return view


async def delete_user(
    database: Database, actor: str, email: str, *, live: Live | None = None
) -> None:
    email = identifiers.email(email)
    if email == actor:
        raise InvalidInputError("you cannot delete yourself")
    async with database.session() as db:
        user = await get_user(db, email)
        user_id = user.id
        await db.delete(user)
        await audit.record(db, actor, "user.delete", email)
    await user_changed(live, user_id)
