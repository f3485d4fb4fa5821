"""Proxy handoff tickets: the launch tickets' table and redemption, with no partner app.

Single-use and short-lived like a launch; a handoff is never redeemed as a launch,
nor a launch as a handoff.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bff.errors import InvalidInputError, NotFoundError
from bff.operations import launches, partner_apps
from bff.operations.launches import PartnerUser
from bff.store.database import Database
from bff.store.models import EmbedTicket
from tests.operations.helpers import ACTOR, seed

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PAIR = ("acme", "north")
ORIGIN = "https://bff.example"
TICKET = "sealed-by-the-caller-" + "x" * 200


async def _user(database: Database) -> int:
    ids = await seed(database, users=["ann@example.com"], pairs=[PAIR])
    return ids["ann@example.com"]


async def test_a_handoff_is_redeemed_once(database: Database) -> None:
    user_id = await _user(database)
    expires = await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    assert expires == NOW + timedelta(seconds=60)
    redeemed = await launches.redeem_handoff(database, TICKET, now=NOW)
    assert redeemed == launches.Handoff(user_id, PAIR, ORIGIN)
    with pytest.raises(NotFoundError):
        await launches.redeem_handoff(database, TICKET, now=NOW)


async def test_only_its_hash_is_stored_with_no_partner_app(database: Database) -> None:
    user_id = await _user(database)
    await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    async with database.session() as db:
        stored = (
            await db.execute(select(EmbedTicket.token_hash, EmbedTicket.partner_app_id))
        ).all()
    assert [tuple(row) for row in stored] == [(launches.hash_ticket(TICKET), None)]


async def test_a_handoff_expires_after_60_seconds(database: Database) -> None:
    user_id = await _user(database)
    await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    with pytest.raises(NotFoundError):
        await launches.redeem_handoff(database, TICKET, now=NOW + timedelta(seconds=60))


async def test_two_redemptions_at_once_one_wins(database: Database) -> None:
    user_id = await _user(database)
    await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    outcomes = await asyncio.gather(
        *(launches.redeem_handoff(database, TICKET, now=NOW) for _ in range(2)),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, launches.Handoff) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, NotFoundError) for outcome in outcomes) == 1


async def test_a_handoff_is_no_launch_and_a_launch_no_handoff(database: Database) -> None:
    user_id = await _user(database)
    await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    created = await partner_apps.create_app(
        database, ACTOR, "Partner", ["https://partner.example"], [PAIR], now=NOW
    )
    launch = await launches.create_launch(
        database, created.app.id, PartnerUser("42"), PAIR, None, now=NOW
    )
    with pytest.raises(NotFoundError):
        await launches.redeem(database, TICKET[:200], now=NOW)
    with pytest.raises(NotFoundError):
        await launches.redeem_handoff(database, launch.ticket, now=NOW)
    # Neither refusal used the other's ticket up.
    assert (await launches.redeem(database, launch.ticket, now=NOW)).partner_app_id
    assert await launches.redeem_handoff(database, TICKET, now=NOW)


async def test_the_sweep_takes_expired_handoffs_too(database: Database) -> None:
    user_id = await _user(database)
    await launches.create_handoff(database, TICKET, user_id, PAIR, ORIGIN, now=NOW)
    assert await launches.sweep(database, now=NOW + timedelta(seconds=61)) == 1


@pytest.mark.parametrize("ticket", ["", "x" * 1001])
async def test_a_ticket_out_of_bounds_is_refused(database: Database, ticket: str) -> None:
    user_id = await _user(database)
    with pytest.raises(InvalidInputError):
        await launches.create_handoff(database, ticket, user_id, PAIR, ORIGIN, now=NOW)
    with pytest.raises(NotFoundError):
        await launches.redeem_handoff(database, ticket, now=NOW)
