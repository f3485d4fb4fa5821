from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bff.errors import AlreadyExistsError, NotFoundError
from bff.operations import api_keys, users
from bff.store.database import Database
from bff.store.models import ApiKey
from tests.operations.helpers import ACTOR

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ANN = "ann@example.com"


async def _owner(database: Database) -> int:
    return (await users.create_user(database, ACTOR, ANN, now=NOW)).user.id


async def test_authenticate_finds_the_owner_and_refuses_everything_else(database: Database) -> None:
    user_id = await _owner(database)
    created = await api_keys.create_key(database, ACTOR, ANN, "ci")
    owner = await api_keys.authenticate(database, created.token, now=NOW)
    assert owner == api_keys.KeyOwner(user_id, ANN, False)
    for wrong in ("", created.token[:-1], created.token + "x", created.token.removeprefix("bffk_")):
        assert await api_keys.authenticate(database, wrong, now=NOW) is None
    await users.update_user(database, ACTOR, ANN, disabled=True)
    assert await api_keys.authenticate(database, created.token, now=NOW) is None
    await users.update_user(database, ACTOR, ANN, disabled=False)
    await api_keys.delete_key(database, ACTOR, user_id, "ci")
    assert await api_keys.authenticate(database, created.token, now=NOW) is None
    with pytest.raises(NotFoundError):
        await api_keys.delete_key(database, ACTOR, user_id, "ci")


async def test_last_used_is_written_at_most_once_a_minute(database: Database) -> None:
    user_id = await _owner(database)
    created = await api_keys.create_key(database, ACTOR, ANN, "ci")
    assert (await api_keys.get_key(database, user_id, "ci")).last_used_at is None
    await api_keys.authenticate(database, created.token, now=NOW)
    await api_keys.authenticate(database, created.token, now=NOW + timedelta(seconds=59))
    assert (await api_keys.get_key(database, user_id, "ci")).last_used_at == NOW
    later = NOW + timedelta(seconds=61)
    await api_keys.authenticate(database, created.token, now=later)
    assert (await api_keys.get_key(database, user_id, "ci")).last_used_at == later


async def test_handles_are_unique_per_user_and_only_hashes_are_stored(database: Database) -> None:
    await _owner(database)
    await users.create_user(database, ACTOR, "bob@example.com", now=NOW)
    first = await api_keys.create_key(database, ACTOR, ANN, "ci", "  ")
    assert first.key.alias is None
    with pytest.raises(AlreadyExistsError):
        await api_keys.create_key(database, ACTOR, ANN, " ci ")
    second = await api_keys.create_key(database, ACTOR, "bob@example.com", "ci")
    async with database.session() as db:
        hashes = list(await db.scalars(select(ApiKey.key_hash)))
    assert sorted(hashes) == sorted(api_keys.hash_token(t) for t in (first.token, second.token))
    assert "token" not in repr(first)
