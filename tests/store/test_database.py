"""A failing statement must not carry its bound values into errors, tracebacks or logs."""

from __future__ import annotations

import logging
import secrets
import traceback
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from bff.logs import JsonFormatter
from bff.store.database import Database
from bff.store.migrate import upgrade
from bff.store.models import SessionRecord

pytestmark = pytest.mark.anyio

NO_SUCH_USER = 424242


async def orphan_session_error(database: Database, csrf_secret: str) -> IntegrityError:
    """Store a session for a user that does not exist: the foreign key refuses it."""
    await upgrade(database.engine)
    with pytest.raises(IntegrityError) as caught:
        async with database.session() as session:
            session.add(
                SessionRecord(
                    id_hash=secrets.token_hex(32), user_id=NO_SUCH_USER, csrf_secret=csrf_secret
                )
            )
    return caught.value


def everything_said(error: BaseException) -> str:
    """The error as raised, as a traceback, and as a log line (plain and JSON)."""
    record = logging.LogRecord(
        "bff.web.errors", logging.ERROR, __file__, 1, "unhandled error", None,
        (type(error), error, error.__traceback__),
    )  # fmt: skip
    return "\n".join(
        (
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            logging.Formatter().format(record),
            JsonFormatter().format(record),
        )
    )


def assert_bound_value_hidden(error: IntegrityError, csrf_secret: str) -> None:
    said = everything_said(error)
    assert csrf_secret not in said
    # The statement itself is still reported, only its values are withheld.
    assert "INSERT INTO sessions" in said
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(error)


async def test_a_failing_statement_on_sqlite_never_shows_its_bound_secret(tmp_path: Path) -> None:
    csrf_secret = f"csrf-{secrets.token_urlsafe(24)}"
    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    try:
        error = await orphan_session_error(database, csrf_secret)
    finally:
        await database.dispose()
    assert_bound_value_hidden(error, csrf_secret)


@pytest.mark.postgres
async def test_a_failing_statement_on_postgresql_never_shows_its_bound_secret(
    postgres_url: str,
) -> None:
    csrf_secret = f"csrf-{secrets.token_urlsafe(24)}"
    database = Database(postgres_url)
    try:
        error = await orphan_session_error(database, csrf_secret)
    finally:
        await database.dispose()
    assert_bound_value_hidden(error, csrf_secret)
