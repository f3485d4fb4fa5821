from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bff import passwords
from bff.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from bff.operations import users
from bff.operations.live import Live
from bff.passwords import verify_password
from bff.store.database import Database
from bff.store.models import SetPasswordToken, User
from tests.operations.helpers import ACTOR, FakeLive, audit_actions

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


async def _password_hash(database: Database, email: str) -> str | None:
    async with database.session() as db:
        return await db.scalar(select(User.password_hash).where(User.email == email))


async def test_a_set_password_token_works_once_and_only_its_hash_is_stored(
    database: Database,
) -> None:
    created = await users.create_user(database, ACTOR, "Ann@Example.com", now=NOW)
    token = created.set_password_token
    assert token is not None and created.user.email == "ann@example.com"
    async with database.session() as db:
        stored = list(await db.scalars(select(SetPasswordToken.token_hash)))
    assert len(stored) == 1 and token not in stored[0]

    await users.set_password_with_token(database, token, PASSWORD, now=NOW + timedelta(hours=23))
    assert verify_password(await _password_hash(database, "ann@example.com"), PASSWORD)
    with pytest.raises(NotFoundError):
        await users.set_password_with_token(database, token, PASSWORD + "!", now=NOW)
    assert await audit_actions(database) == ["user.create", "user.set_password"]


async def test_a_set_password_token_expires_after_24_hours(database: Database) -> None:
    created = await users.create_user(database, ACTOR, "ann@example.com", now=NOW)
    assert created.set_password_token
    with pytest.raises(NotFoundError, match="expired"):
        await users.set_password_with_token(
            database, created.set_password_token, PASSWORD, now=NOW + timedelta(hours=24)
        )
    assert await _password_hash(database, "ann@example.com") is None


async def test_a_disabled_user_cannot_redeem_a_token(database: Database) -> None:
    created = await users.create_user(database, ACTOR, "ann@example.com", now=NOW)
    assert created.set_password_token
    await users.update_user(database, ACTOR, "ann@example.com", disabled=True)
    with pytest.raises(NotFoundError):
        await users.set_password_with_token(database, created.set_password_token, PASSWORD, now=NOW)


async def test_a_weak_token_password_is_refused(database: Database) -> None:
    created = await users.create_user(database, ACTOR, "ann@example.com", now=NOW)
    assert created.set_password_token
    with pytest.raises(ValueError, match="at least"):
        await users.set_password_with_token(database, created.set_password_token, "short", now=NOW)


async def test_with_a_password_no_token_is_made(database: Database) -> None:
    created = await users.create_user(
        database, ACTOR, "ann@example.com", password=PASSWORD, now=NOW
    )
    assert created.set_password_token is None
    with pytest.raises(AlreadyExistsError):
        await users.create_user(database, ACTOR, " ANN@example.com", now=NOW)


async def test_disabling_and_deleting_end_sessions_through_live(database: Database) -> None:
    created = await users.create_user(database, ACTOR, "ann@example.com", now=NOW)
    live = FakeLive()
    on = Live(sessions=live, mappings=live)
    await users.update_user(database, ACTOR, "ann@example.com", is_admin=True, live=on)
    assert live.revoked_users == []  # a promotion ends nothing
    await users.update_user(database, ACTOR, "ann@example.com", disabled=True, live=on)
    await users.update_user(database, ACTOR, "ann@example.com", disabled=True, live=on)  # no change
    assert live.revoked_users == [created.user.id]
    await users.delete_user(database, ACTOR, "ann@example.com", live=on)
    assert live.revoked_users == [created.user.id] * 2
    with pytest.raises(NotFoundError):
        await users.get_user_view(database, "ann@example.com")
    assert (await audit_actions(database)).count("user.update") == 2


async def test_nobody_deletes_or_disables_themselves(database: Database) -> None:
    await users.create_user(database, ACTOR, ACTOR, is_admin=True, now=NOW)
    for call in (
        users.delete_user(database, ACTOR, ACTOR.upper()),
        users.update_user(database, ACTOR, ACTOR, disabled=True),
    ):
        with pytest.raises(InvalidInputError):
            await call


async def test_the_user_list_reads_the_email_index_in_order(database: Database) -> None:
    """Paging 10,000 users must not sort the whole table for every page."""
    if not database.url.startswith("sqlite"):
        pytest.skip("the query plan is checked on SQLite")

    async with database.engine.connect() as connection:
        plan = (
            await connection.execute(
                text("EXPLAIN QUERY PLAN SELECT * FROM users ORDER BY email LIMIT 51 OFFSET 50")
            )
        ).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX" in details
    assert "TEMP B-TREE" not in details


async def test_passwords_are_hashed_off_the_event_loop(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Argon2 holds the CPU for a while: on the loop it would stall every request."""
    loop_thread = threading.get_ident()
    hashed_on: list[int] = []
    original = passwords.hash_password

    def recording(password: str) -> str:
        hashed_on.append(threading.get_ident())
        return original(password)

    monkeypatch.setattr(users, "hash_password", recording)
    await users.create_user(database, ACTOR, "bo@example.com", password=PASSWORD, now=NOW)
    created = await users.create_user(database, ACTOR, "cy@example.com", now=NOW)
    assert created.set_password_token is not None
    await users.set_password_with_token(database, created.set_password_token, PASSWORD, now=NOW)
    assert len(hashed_on) == 2 and loop_thread not in hashed_on
