"""Embed launches: a partner app asks for one of its users to see one pair, and gets a
single-use ticket; the browser's iframe redeems it once.

A partner's users are identified within their app: ``(app, external id)`` names
one person, so two partners' user "42" are two users. Such a user is a row of
``users`` with no password and an address under ``.invalid`` that no one can own
(and that :func:`bff.identifiers.email` refuses), and e-mail lookups never find
them (:func:`bff.store.users.find_user`): they cannot sign in at ``/login``,
through OpenID Connect, or be mapped by an administrator.

A ticket is 256 random bits, valid :data:`TICKET_LIFETIME`; only its SHA-256 is
stored. Redeeming deletes the row and reads it back in one statement, so of two
redemptions at once exactly one gets it. Every launch and redemption is in the
audit log (actor ``partner-app:<id>``, never the ticket).

The same table and the same redemption hold the proxy's *handoff* tickets
(:func:`create_handoff`, :func:`redeem_handoff`; :mod:`bff.web.dashboard.handoff`):
a ticket with no partner app, minted by a signed-in bff page for its frame on
``BFF_PROXY_ORIGIN``. A launch is never redeemed as a handoff, nor a handoff as a
launch. Handoffs happen on every proxied dashboard view and are not audited.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Row, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import ForbiddenError, InvalidInputError, NotFoundError, RevokedError
from bff.operations import audit
from bff.origins import clean_origin
from bff.store.database import Database
from bff.store.models import EmbedTicket, PartnerApp, PartnerAppScope, User

TICKET_LIFETIME = timedelta(seconds=60)
MAX_EXTERNAL_ID = 200
MAX_NAME = 200
_PARTNER_DOMAIN = "partner" + identifiers.RESERVED_DOMAIN

Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class PartnerUser:
    """Who the partner says the user is; ``email`` and ``name`` are for display only."""

    id: str
    email: str | None = None
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Launch:
    ticket: str = dataclasses.field(repr=False)
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class Redeemed:
    """What a redeemed ticket was for: an embed session for this user, app and pair,
    whose pages talk to exactly ``origin``."""

    partner_app_id: int
    user_id: int
    pair: Pair
    origin: str


def hash_ticket(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def clean_user(value: object) -> PartnerUser:
    """The launch's ``user`` object, validated; :class:`InvalidInputError` names the field."""
    if not isinstance(value, dict):
        raise InvalidInputError("user must be an object with an id", field="user")
    external_id = value.get("id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id.strip():
        raise InvalidInputError("user.id is required (a string)", field="user.id")
    external_id = external_id.strip()
    if len(external_id) > MAX_EXTERNAL_ID or not external_id.isprintable():
        raise InvalidInputError(
            f"user.id must be 1 to {MAX_EXTERNAL_ID} printable characters", field="user.id"
        )
    return PartnerUser(external_id, _optional(value, "email"), _optional(value, "name"))


def _optional(value: dict[str, object], name: str) -> str | None:
    text = value.get(name)
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_NAME or not text.isprintable():
        raise InvalidInputError(
            f"user.{name} must be a string of at most {MAX_NAME} printable characters",
            field=f"user.{name}",
        )
    return text.strip() or None


async def create_launch(
    database: Database,
    app_id: int,
    user: PartnerUser,
    pair: Pair,
    origin: str | None,
    *,
    now: datetime,
) -> Launch:
    """A ticket for ``user`` of app ``app_id`` to see ``pair``, framed by ``origin``.

    :class:`ForbiddenError` for a pair the app may not serve or an origin it does not
    allow (an app with no origins can be framed nowhere); :class:`RevokedError` for a
    revoked app. Without ``origin`` the app's only allowed origin is taken."""
    pair = (identifiers.tenant_id(pair[0]), identifiers.sub_tenant_id(pair[1]))
    async with database.session() as db:
        app = await db.get(PartnerApp, app_id)
        if app is None or app.disabled:
            raise RevokedError("this partner app is revoked")
        allowed = await db.get(PartnerAppScope, (app_id, *pair))
        if allowed is None:
            raise ForbiddenError(f"this app may not open sessions for {pair[0]}/{pair[1]}")
        frame_origin = _frame_origin(app, origin)
        user_id = await _partner_user(db, app_id, user)
        ticket = secrets.token_urlsafe(32)
        expires_at = now + TICKET_LIFETIME
        db.add(
            EmbedTicket(
                token_hash=hash_ticket(ticket),
                partner_app_id=app_id,
                user_id=user_id,
                tenant_id=pair[0],
                sub_tenant_id=pair[1],
                origin=frame_origin,
                expires_at=expires_at,
                created_at=now,
            )
        )
        await audit.record(
            db, _actor(app_id), "embed.launch", _target(user.id, pair), {"origin": frame_origin}
        )
    return Launch(ticket, expires_at)


def _actor(app_id: int) -> str:
    return f"partner-app:{app_id}"


def _target(external_id: str, pair: Pair) -> str:
    return f"user {external_id} on {pair[0]}/{pair[1]}"


def allowed_origins(app: PartnerApp) -> list[str]:
    found = json.loads(app.allowed_origins or "[]")
    return [origin for origin in found if isinstance(origin, str)]


def _frame_origin(app: PartnerApp, origin: str | None) -> str:
    allowed = allowed_origins(app)
    if not allowed:
        raise ForbiddenError("this app has no allowed origins, so it can be embedded nowhere")
    if origin is None:
        if len(allowed) > 1:
            raise InvalidInputError(
                "origin is required: the app allows several origins", field="origin"
            )
        return allowed[0]
    cleaned = clean_origin(origin, "origin")
    if cleaned not in allowed:
        raise ForbiddenError(f"origin {cleaned} is not one of this app's allowed origins")
    return cleaned


async def _partner_user(db: AsyncSession, app_id: int, user: PartnerUser) -> int:
    query = select(User).where(User.partner_app_id == app_id, User.external_id == user.id)
    found = await db.scalar(query)
    if found is None:
        found = User(
            email=f"{secrets.token_hex(12)}@{_PARTNER_DOMAIN}",
            password_hash=None,
            partner_app_id=app_id,
            external_id=user.id,
        )
        try:
            async with db.begin_nested():
                db.add(found)
        except IntegrityError:  # the same user's first launch, twice at once
            found = await db.scalar(query)
            if found is None:
                raise
    if found.disabled:
        raise ForbiddenError("this user is disabled")
    if user.name is not None and found.display_name != user.name:
        found.display_name = user.name
    await db.flush()
    return found.id


async def redeem(database: Database, ticket: str, *, now: datetime) -> Redeemed:
    """Use a ticket up. :class:`NotFoundError` when it is unknown, used or expired;
    :class:`RevokedError` when its app was revoked meanwhile."""
    if not ticket or len(ticket) > 200:
        raise NotFoundError("this launch link is unknown, used or expired")
    async with database.session() as db:
        row = await _use_up(db, ticket, launch=True)
        if row is None or row.partner_app_id is None or row.expires_at <= now:
            raise NotFoundError("this launch link is unknown, used or expired")
        app = await db.get(PartnerApp, row.partner_app_id)
        if app is None or app.disabled:
            raise RevokedError("this partner app is revoked")
        pair = (row.tenant_id, row.sub_tenant_id)
        user = await db.get(User, row.user_id)
        external_id = user.external_id if user is not None and user.external_id else "?"
        await audit.record(db, _actor(app.id), "embed.redeem", _target(external_id, pair))
    return Redeemed(app.id, row.user_id, pair, row.origin)


@dataclasses.dataclass(frozen=True)
class Handoff:
    """What a redeemed handoff ticket was for: ``user_id``'s view of ``pair``, framed by
    the page at ``origin``."""

    user_id: int
    pair: Pair
    origin: str


# A handoff ticket carries its (sealed) parent session, so it is longer than a launch's.
MAX_HANDOFF_TICKET = 1000


async def create_handoff(
    database: Database, ticket: str, user_id: int, pair: Pair, origin: str, *, now: datetime
) -> datetime:
    """Store ``ticket`` (only its hash) as a single-use handoff of ``user_id``'s view of
    ``pair``; returns when it expires. The caller makes the ticket unguessable."""
    if not ticket or len(ticket) > MAX_HANDOFF_TICKET:
        raise InvalidInputError("a handoff ticket must be 1 to 1000 characters")
    expires_at = now + TICKET_LIFETIME
    async with database.session() as db:
        db.add(
            EmbedTicket(
                token_hash=hash_ticket(ticket),
                partner_app_id=None,
                user_id=user_id,
                tenant_id=pair[0],
                sub_tenant_id=pair[1],
                origin=origin,
                expires_at=expires_at,
                created_at=now,
            )
        )
    return expires_at


async def redeem_handoff(database: Database, ticket: str, *, now: datetime) -> Handoff:
    """Use a handoff ticket up (deleted as it is read: of two redemptions exactly one
    wins). :class:`NotFoundError` when it is unknown, used, expired, or a launch's."""
    if not ticket or len(ticket) > MAX_HANDOFF_TICKET:
        raise NotFoundError("this handoff is unknown, used or expired")
    async with database.session() as db:
        row = await _use_up(db, ticket, launch=False)
    if row is None or row.expires_at <= now:
        raise NotFoundError("this handoff is unknown, used or expired")
    return Handoff(row.user_id, (row.tenant_id, row.sub_tenant_id), row.origin)


async def sweep(database: Database, *, now: datetime) -> int:
    """Delete expired tickets; returns how many."""
    async with database.session() as db:
        result = await db.execute(delete(EmbedTicket).where(EmbedTicket.expires_at <= now))
        return int(getattr(result, "rowcount", 0) or 0)


_TicketRow = Row[int | None, int, str, str, str, datetime]


async def _use_up(db: AsyncSession, ticket: str, *, launch: bool) -> _TicketRow | None:
    """Delete a launch's (or a handoff's) ticket as it is read: of two redemptions
    exactly one gets the row. A launch's ticket is never a handoff's, nor the reverse."""
    kind = (
        EmbedTicket.partner_app_id.is_not(None) if launch else EmbedTicket.partner_app_id.is_(None)
    )
    result = await db.execute(
        delete(EmbedTicket)
        .where(EmbedTicket.token_hash == hash_ticket(ticket), kind)
        .returning(
            EmbedTicket.partner_app_id,
            EmbedTicket.user_id,
            EmbedTicket.tenant_id,
            EmbedTicket.sub_tenant_id,
            EmbedTicket.origin,
            EmbedTicket.expires_at,
        )
    )
    return result.first()
