"""Personal API keys: the token is shown once; only its SHA-256 is stored.

A token is 256 random bits, so a plain SHA-256 is enough to make the stored
value useless to whoever reads the database (no dictionary to try). Every
request looks its key up again, so a deleted key or a disabled owner is refused
on the very next request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from bff.operations import audit
from bff.store.database import Database
from bff.store.models import ApiKey, User
from bff.store.users import get_user

TOKEN_PREFIX = "bffk_"
MAX_ALIAS_LENGTH = 200
# last_used_at is written at most this often per key: one UPDATE per request would
# make every API call a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class KeyView:
    handle: str
    alias: str | None
    created_at: datetime
    last_used_at: datetime | None


@dataclasses.dataclass(frozen=True)
class CreatedKey:
    key: KeyView
    token: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class KeyOwner:
    user_id: int
    email: str
    is_admin: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(key: ApiKey) -> KeyView:
    return KeyView(key.handle, key.alias, key.created_at, key.last_used_at)


def _handle(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError("handle must be a string", field="handle")
    return identifiers.tenant_id(value, "handle")


def _alias(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError("alias must be a string", field="alias")
    value = value.strip()
    if len(value) > MAX_ALIAS_LENGTH:
        raise InvalidInputError(
            f"alias is longer than {MAX_ALIAS_LENGTH} characters", field="alias"
        )
    if any(ord(char) < 32 for char in value):
        raise InvalidInputError("alias contains control characters", field="alias")
    return value or None


async def create_key(
    database: Database, actor: str, email: str, handle: object, alias: object = None
) -> CreatedKey:
    """A new key for the user ``email``; 409-style :class:`AlreadyExistsError` when
    that user already has a key with this handle."""
    email = identifiers.email(email)
    handle = _handle(handle)
    alias = _alias(alias)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with database.session() as db:
        user = await get_user(db, email)
        if await _find(db, user.id, handle) is not None:
            raise AlreadyExistsError(f"a key with the handle {handle} already exists")
        key = ApiKey(user_id=user.id, handle=handle, alias=alias, key_hash=hash_token(token))
        db.add(key)
        await db.flush()
        await audit.record(db, actor, "api_key.create", f"{email} {handle}")
        view = _view(key)
    return CreatedKey(view, token)


async def list_keys(database: Database, user_id: int) -> list[KeyView]:
    async with database.session() as db:
        keys = await db.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.handle)
        )
        return [_view(key) for key in keys]


async def get_key(database: Database, user_id: int, handle: str) -> KeyView:
    async with database.session() as db:
        key = await _find(db, user_id, handle.strip())
        if key is None:
            raise NotFoundError(f"no key {handle.strip()}")
        return _view(key)


async def delete_key(database: Database, actor: str, user_id: int, handle: str) -> None:
    handle = handle.strip()
    async with database.session() as db:
        result = await db.execute(
            delete(ApiKey).where(ApiKey.user_id == user_id, ApiKey.handle == handle)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFoundError(f"no key {handle}")
        owner = await db.get(User, user_id)
        await audit.record(
            db, actor, "api_key.delete", f"{owner.email if owner else user_id} {handle}"
        )


async def authenticate(database: Database, token: str, *, now: datetime) -> KeyOwner | None:
    """The key's owner, or None for an unknown token or a disabled owner."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key_hash = hash_token(token)
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                select(ApiKey.id, User.id, User.email, User.is_admin, User.disabled)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == key_hash)
            )
        ).first()
        if row is None:
            return None
        key_id, user_id, email, is_admin, disabled = row
        if disabled:
            return None
        result = await connection.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(
                    ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION
                ),
            )
            .values(last_used_at=now)
        )
        if getattr(result, "rowcount", 0):
            await connection.commit()
    return KeyOwner(user_id, email, is_admin)


async def _find(db: AsyncSession, user_id: int, handle: str) -> ApiKey | None:
    return await db.scalar(select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.handle == handle))
