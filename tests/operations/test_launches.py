"""Embed launches: tickets are single-use and short-lived, for exactly the app's pairs and
origins, and a partner's user is nobody else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bff import identifiers
from bff.errors import (
    ForbiddenError,
    InvalidIdentifierError,
    InvalidInputError,
    NotFoundError,
    RevokedError,
)
from bff.operations import launches, partner_apps
from bff.operations.launches import PartnerUser
from bff.store.database import Database
from bff.store.models import AuditEntry, EmbedTicket, User
from bff.store.users import add_user, find_user
from tests.operations.helpers import ACTOR, seed

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ACME = ("acme", "north")
GLOBEX = ("globex", "main")
ORIGIN = "https://partner.example"


async def _app(database: Database, origins: list[str] | None = None) -> int:
    await seed(database, pairs=[ACME, GLOBEX])
    created = await partner_apps.create_app(
        database, ACTOR, "Partner", [ORIGIN] if origins is None else origins, [ACME], now=NOW
    )
    return created.app.id


async def _launch(database: Database, app_id: int, user: str = "42") -> launches.Launch:
    return await launches.create_launch(
        database, app_id, PartnerUser(user, name="Ann"), ACME, None, now=NOW
    )


async def test_a_ticket_is_redeemed_once(database: Database) -> None:
    app_id = await _app(database)
    launch = await _launch(database, app_id)
    assert launch.expires_at == NOW + timedelta(seconds=60)
    redeemed = await launches.redeem(database, launch.ticket, now=NOW)
    assert (redeemed.partner_app_id, redeemed.pair, redeemed.origin) == (app_id, ACME, ORIGIN)
    with pytest.raises(NotFoundError):
        await launches.redeem(database, launch.ticket, now=NOW)


async def test_only_its_hash_is_stored(database: Database) -> None:
    launch = await _launch(database, await _app(database))
    async with database.session() as db:
        stored = list(await db.scalars(select(EmbedTicket.token_hash)))
    assert stored == [launches.hash_ticket(launch.ticket)]


async def test_a_ticket_expires_after_60_seconds(database: Database) -> None:
    launch = await _launch(database, await _app(database))
    with pytest.raises(NotFoundError):
        await launches.redeem(database, launch.ticket, now=NOW + timedelta(seconds=60))


async def test_two_redemptions_at_once_one_wins(database: Database) -> None:
    launch = await _launch(database, await _app(database))
    outcomes = await asyncio.gather(
        *(launches.redeem(database, launch.ticket, now=NOW) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["NotFoundError", "Redeemed"]


async def test_a_pair_the_app_may_not_serve_is_forbidden(database: Database) -> None:
    app_id = await _app(database)
    with pytest.raises(ForbiddenError):
        await launches.create_launch(database, app_id, PartnerUser("42"), GLOBEX, None, now=NOW)


async def test_a_revoked_app_gets_no_launch_and_its_tickets_fail(database: Database) -> None:
    app_id = await _app(database)
    launch = await _launch(database, app_id)
    await partner_apps.revoke_app(database, ACTOR, app_id, now=NOW)
    with pytest.raises(RevokedError):
        await _launch(database, app_id)
    with pytest.raises((RevokedError, NotFoundError)):
        await launches.redeem(database, launch.ticket, now=NOW)


@pytest.mark.parametrize(
    ("origins", "asked", "outcome"),
    [
        ([ORIGIN], None, ORIGIN),
        ([ORIGIN], "HTTPS://Partner.Example:443", ORIGIN),
        ([ORIGIN, "https://b.example"], "https://b.example", "https://b.example"),
        ([ORIGIN, "https://b.example"], None, InvalidInputError),
        ([ORIGIN], "https://evil.example", ForbiddenError),
        ([ORIGIN], "https://partner.example.evil.example", ForbiddenError),
        ([], None, ForbiddenError),
        ([ORIGIN], "javascript:alert(1)", InvalidInputError),
    ],
)
async def test_the_frame_origin_is_one_the_app_allows(
    database: Database, origins: list[str], asked: str | None, outcome: object
) -> None:
    app_id = await _app(database, origins)

    async def launch() -> str:
        made = await launches.create_launch(
            database, app_id, PartnerUser("42"), ACME, asked, now=NOW
        )
        return (await launches.redeem(database, made.ticket, now=NOW)).origin

    if isinstance(outcome, str):
        assert await launch() == outcome
    else:
        with pytest.raises(outcome):  # type: ignore[call-overload]
            await launch()


async def test_a_partner_user_is_known_only_within_its_app(database: Database) -> None:
    first = await _app(database)
    second = (await partner_apps.create_app(database, ACTOR, "B", [ORIGIN], [ACME], now=NOW)).app
    one = await launches.redeem(database, (await _launch(database, first)).ticket, now=NOW)
    again = await launches.redeem(database, (await _launch(database, first)).ticket, now=NOW)
    other = await launches.redeem(database, (await _launch(database, second.id)).ticket, now=NOW)
    assert one.user_id == again.user_id != other.user_id


async def test_a_partner_user_never_meets_a_local_user(database: Database) -> None:
    app_id = await _app(database)
    async with database.session() as db:
        local = await add_user(db, "42@partner.example", "hash")
        local_id = local.id
    redeemed = await launches.redeem(
        database, (await _launch(database, app_id, user=str(local_id))).ticket, now=NOW
    )
    assert redeemed.user_id != local_id
    async with database.session() as db:
        partner = await db.get(User, redeemed.user_id)
        assert partner is not None
        assert (partner.partner_app_id, partner.external_id, partner.password_hash) == (
            app_id,
            str(local_id),
            None,
        )
        assert partner.email.endswith(".invalid")
        assert await find_user(db, partner.email) is None
    with pytest.raises(InvalidIdentifierError):
        identifiers.email(partner.email)


@pytest.mark.parametrize(
    "user", [None, {}, {"id": ""}, {"id": "x" * 201}, {"id": "a\nb"}, {"id": True}]
)
def test_malformed_users_are_refused_naming_the_field(user: object) -> None:
    with pytest.raises(InvalidInputError) as caught:
        launches.clean_user(user)
    assert caught.value.field in ("user", "user.id")


async def test_expired_tickets_are_swept(database: Database) -> None:
    app_id = await _app(database)
    await _launch(database, app_id)
    assert await launches.sweep(database, now=NOW + timedelta(seconds=59)) == 0
    assert await launches.sweep(database, now=NOW + timedelta(seconds=60)) == 1


@pytest.mark.parametrize("change", ["regenerate", "revoke", "narrow origins", "narrow pairs"])
async def test_unredeemed_launches_end_with_what_issued_them(
    database: Database, change: str
) -> None:
    app_id = await _app(database, [ORIGIN, "https://b.example"])
    await partner_apps.update_app(database, ACTOR, app_id, pairs=[ACME, GLOBEX])
    launch = await launches.create_launch(
        database, app_id, PartnerUser("42"), ACME, ORIGIN, now=NOW
    )
    if change == "regenerate":
        await partner_apps.regenerate_secret(database, ACTOR, app_id, now=NOW)
    elif change == "revoke":
        await partner_apps.revoke_app(database, ACTOR, app_id, now=NOW)
    elif change == "narrow origins":
        await partner_apps.update_app(database, ACTOR, app_id, allowed_origins=[ORIGIN])
    else:
        await partner_apps.update_app(database, ACTOR, app_id, pairs=[ACME])
    with pytest.raises(NotFoundError):
        await launches.redeem(database, launch.ticket, now=NOW)


async def test_widening_an_app_keeps_its_launches(database: Database) -> None:
    app_id = await _app(database)
    launch = await _launch(database, app_id)
    await partner_apps.update_app(
        database, ACTOR, app_id, allowed_origins=[ORIGIN, "https://b.example"]
    )
    assert (await launches.redeem(database, launch.ticket, now=NOW)).pair == ACME


async def test_launches_and_redemptions_are_audited_without_the_ticket(
    database: Database,
) -> None:
    app_id = await _app(database)
    launch = await _launch(database, app_id)
    await launches.redeem(database, launch.ticket, now=NOW)
    async with database.session() as db:
        rows = (await db.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
        entries = [(e.actor, e.action, e.target, e.detail) for e in rows]
    assert entries[-2:] == [
        (f"partner-app:{app_id}", "embed.launch", "user 42 on acme/north",
         '{"origin": "https://partner.example"}'),
        (f"partner-app:{app_id}", "embed.redeem", "user 42 on acme/north", "{}"),
    ]  # fmt: skip
    assert launch.ticket not in repr(entries)
