"""Partner apps and their client credentials: create, list, change origins and pairs,
regenerate the secret, revoke; and :func:`authenticate_client` for the token endpoint.

Each app has one credential: a public ``client_id`` and a client secret of 256
random bits, shown once; only its SHA-256 is stored (as for personal API keys, a
secret that random needs no slow hash). Regenerating keeps the client id and
replaces the hash, so the old secret fails at once; revoking marks the app and its
credential, and a revoked app gets no new secret.

Tokens already issued end with the secret that earned them: the token endpoint puts
the credential's *generation* (:attr:`AuthenticatedApp.generation`) in each token
and compares it with :func:`credential_generation` on every request. The generation
is derived from the stored secret hash, so every new secret changes it, it reveals
nothing about the secret, and no schema change is needed; a revoked app has none.
Regenerating and revoking also end the app's embed sessions (after the commit).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import InvalidIdentifierError, InvalidInputError, NotFoundError, RevokedError
from bff.operations import audit
from bff.operations.live import Live, partner_app_cut_off
from bff.origins import clean_origin
from bff.store.database import Database
from bff.store.models import EmbedTicket, PartnerApp, PartnerAppScope, PartnerCredential
from bff.store.users import unknown_pairs

Pair = tuple[str, str]
Status = Literal["active", "revoked"]

CLIENT_ID_PREFIX = "bffp_"
SECRET_PREFIX = "bffs_"
MAX_NAME_LENGTH = 200
MAX_ORIGINS = 50
MAX_PAIRS = 10_000
# Longer presented values are refused without looking further (still hashed: same work).
MAX_CREDENTIAL_LENGTH = 512
# last_used_at is written at most this often: one UPDATE per token request would be waste.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Compared against when the client id is unknown, so both refusals cost the same.
_DUMMY_HASH = hashlib.sha256(b"no partner app has this secret").hexdigest()


@dataclasses.dataclass(frozen=True)
class AppView:
    id: int
    name: str
    client_id: str
    allowed_origins: tuple[str, ...]
    pairs: tuple[Pair, ...]
    created_at: datetime
    secret_created_at: datetime
    last_used_at: datetime | None
    status: Status


@dataclasses.dataclass(frozen=True)
class NewSecret:
    """An app with a secret to show once (creation or regeneration)."""

    app: AppView
    client_secret: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class AuthenticatedApp:
    app: AppView
    generation: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _generation(secret_hash: str) -> str:
    return hashlib.sha256(f"generation:{secret_hash}".encode()).hexdigest()[:32]


def _target(app_id: int, name: str) -> str:
    return f"{name} (#{app_id})"


# Validation.


def clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInputError("name is required", field="name")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name is longer than {MAX_NAME_LENGTH} characters", field="name")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidInputError("name contains control characters", field="name")
    return value


def clean_origins(values: Iterable[str]) -> list[str]:
    """Each origin cleaned, duplicates dropped, order kept."""
    cleaned = list(dict.fromkeys(clean_origin(value) for value in values))
    if len(cleaned) > MAX_ORIGINS:
        raise InvalidInputError(
            f"allowed_origins holds more than {MAX_ORIGINS} origins", field="allowed_origins"
        )
    return cleaned


def clean_pairs(values: Iterable[tuple[str, str]]) -> list[Pair]:
    """Validated (tenant, sub-tenant) ids, sorted, without duplicates."""
    pairs = set()
    for tenant_id, sub_tenant_id in values:
        try:
            pairs.add((identifiers.tenant_id(tenant_id), identifiers.sub_tenant_id(sub_tenant_id)))
        except InvalidIdentifierError as exc:
            raise InvalidInputError(f"pairs: {exc}", field="pairs") from None
    if len(pairs) > MAX_PAIRS:
        raise InvalidInputError(f"at most {MAX_PAIRS} pairs per partner app", field="pairs")
    return sorted(pairs)


async def _require_pairs(db: AsyncSession, pairs: list[Pair]) -> None:
    missing = await unknown_pairs(db, pairs)
    if missing:
        tenant, sub = missing[0]
        raise InvalidInputError(
            f"pairs: no pair ({tenant}, {sub}); create the tenant and sub-tenant first",
            field="pairs",
        )


# Reading.


async def _views(db: AsyncSession, app_ids: Sequence[int] | None = None) -> list[AppView]:
    query = select(PartnerApp, PartnerCredential).join(
        PartnerCredential, PartnerCredential.partner_app_id == PartnerApp.id
    )
    scopes = select(PartnerAppScope).order_by(
        PartnerAppScope.tenant_id, PartnerAppScope.sub_tenant_id
    )
    if app_ids is not None:
        query = query.where(PartnerApp.id.in_(app_ids))
        scopes = scopes.where(PartnerAppScope.partner_app_id.in_(app_ids))
    rows = (await db.execute(query.order_by(PartnerApp.id))).all()
    pairs: dict[int, list[Pair]] = {}
    for scope in await db.scalars(scopes):
        pairs.setdefault(scope.partner_app_id, []).append((scope.tenant_id, scope.sub_tenant_id))
    return [
        AppView(
            id=app.id,
            name=app.name,
            client_id=credential.client_id,
            allowed_origins=tuple(json.loads(app.allowed_origins)),
            pairs=tuple(pairs.get(app.id, [])),
            created_at=app.created_at,
            secret_created_at=credential.created_at,
            last_used_at=credential.last_used_at,
            status="revoked" if app.disabled or credential.revoked_at else "active",
        )
        for app, credential in rows
    ]


async def _view(db: AsyncSession, app_id: int) -> AppView:
    found = await _views(db, [app_id])
    if not found:
        raise NotFoundError(f"no partner app {app_id}")
    return found[0]


async def _load(db: AsyncSession, app_id: int) -> tuple[PartnerApp, PartnerCredential]:
    row = (
        await db.execute(
            select(PartnerApp, PartnerCredential)
            .join(PartnerCredential, PartnerCredential.partner_app_id == PartnerApp.id)
            .where(PartnerApp.id == app_id)
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no partner app {app_id}")
    app, credential = row
    return app, credential


async def list_apps(database: Database) -> list[AppView]:
    async with database.session() as db:
        return await _views(db)


async def get_app(database: Database, app_id: int) -> AppView:
    async with database.session() as db:
        return await _view(db, app_id)


# Changing.


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def create_app(
    database: Database,
    actor: str,
    name: str,
    allowed_origins: Iterable[str],
    pairs: Iterable[Pair],
    *,
    now: datetime,
) -> NewSecret:
    """A new app with its credential; the client secret is in the answer only."""
    name = clean_name(name)
    origins = clean_origins(allowed_origins)
    wanted = clean_pairs(pairs)
    secret = _new_secret()
    client_id = CLIENT_ID_PREFIX + secrets.token_urlsafe(16)
    async with database.session() as db:
        await _require_pairs(db, wanted)
        app = PartnerApp(name=name, allowed_origins=json.dumps(origins), created_at=now)
        db.add(app)
        await db.flush()
        db.add(
            PartnerCredential(
                partner_app_id=app.id,
                client_id=client_id,
                secret_hash=hash_secret(secret),
                created_at=now,
            )
        )
        db.add_all(
            PartnerAppScope(partner_app_id=app.id, tenant_id=t, sub_tenant_id=s) for t, s in wanted
        )
        await audit.record(
            db,
            actor,
            "partner_app.create",
            _target(app.id, name),
            {
                "client_id": client_id,
                "allowed_origins": origins,
                "pairs": [list(p) for p in wanted],
            },
        )
        view = await _view(db, app.id)
    return NewSecret(view, secret)


async def update_app(
    database: Database,
    actor: str,
    app_id: int,
    *,
    name: str | None = None,
    allowed_origins: Iterable[str] | None = None,
    pairs: Iterable[Pair] | None = None,
    live: Live | None = None,
) -> AppView:
    """Change what is given; a removed pair or origin ends the app's embed sessions and
    unredeemed launches at once."""
    new_name = None if name is None else clean_name(name)
    origins = None if allowed_origins is None else clean_origins(allowed_origins)
    wanted = None if pairs is None else clean_pairs(pairs)
    changes: dict[str, object] = {}
    removed: list[Pair] = []
    narrowed = False
    async with database.session() as db:
        app, _ = await _load(db, app_id)
        if new_name is not None and new_name != app.name:
            changes["name"] = app.name = new_name
        if origins is not None and origins != json.loads(app.allowed_origins):
            narrowed = bool(set(json.loads(app.allowed_origins)) - set(origins))
            app.allowed_origins = json.dumps(origins)
            changes["allowed_origins"] = origins
        if wanted is not None:
            await _require_pairs(db, wanted)
            current = set((await _view(db, app_id)).pairs)
            removed = sorted(current - set(wanted))
            added = sorted(set(wanted) - current)
            for tenant, sub in removed:
                await db.execute(
                    delete(PartnerAppScope).where(
                        PartnerAppScope.partner_app_id == app_id,
                        PartnerAppScope.tenant_id == tenant,
                        PartnerAppScope.sub_tenant_id == sub,
                    )
                )
            db.add_all(
                PartnerAppScope(partner_app_id=app_id, tenant_id=t, sub_tenant_id=s)
                for t, s in added
            )
            if added or removed:
                changes["pairs_added"] = [list(p) for p in added]
                changes["pairs_removed"] = [list(p) for p in removed]
        narrowed = narrowed or bool(removed)
        if narrowed:
            await _drop_launches(db, app_id)
        if changes:
            await audit.record(db, actor, "partner_app.update", _target(app_id, app.name), changes)
        view = await _view(db, app_id)
    if narrowed:
        await partner_app_cut_off(live, app_id)
    return view


async def _drop_launches(db: AsyncSession, app_id: int) -> None:
    """Unredeemed launch tickets were issued under what just changed: none may be used."""
    await db.execute(delete(EmbedTicket).where(EmbedTicket.partner_app_id == app_id))


async def regenerate_secret(
    database: Database, actor: str, app_id: int, *, now: datetime, live: Live | None = None
) -> NewSecret:
    """A new secret for the same client id; the old one, its tokens and the app's embed
    sessions end at once. :class:`RevokedError` for a revoked app."""
    secret = _new_secret()
    async with database.session() as db:
        app, credential = await _load(db, app_id)
        if app.disabled or credential.revoked_at is not None:
            raise RevokedError(f"partner app {app_id} is revoked; create a new one")
        credential.secret_hash = hash_secret(secret)
        credential.created_at = now
        # Shows the admin when the partner has switched to the new secret.
        credential.last_used_at = None
        await _drop_launches(db, app_id)
        await audit.record(db, actor, "partner_app.regenerate_secret", _target(app_id, app.name))
        view = await _view(db, app_id)
    await partner_app_cut_off(live, app_id)
    return NewSecret(view, secret)


async def revoke_app(
    database: Database, actor: str, app_id: int, *, now: datetime, live: Live | None = None
) -> AppView:
    """Revoke the app: its secret, its tokens and its embed sessions end at once.
    Revoking a revoked app changes nothing."""
    async with database.session() as db:
        app, credential = await _load(db, app_id)
        if not app.disabled or credential.revoked_at is None:
            app.disabled = True
            credential.revoked_at = credential.revoked_at or now
            await _drop_launches(db, app_id)
            await audit.record(db, actor, "partner_app.revoke", _target(app_id, app.name))
        view = await _view(db, app_id)
    await partner_app_cut_off(live, app_id)
    return view


# The token endpoint's side.


async def authenticate_client(
    database: Database, client_id: str, client_secret: str, now: datetime
) -> AuthenticatedApp | None:
    """The active app these credentials belong to, or None. An unknown client id and a
    wrong secret are refused alike, after the same hashing and comparison."""
    too_long = len(client_id) > MAX_CREDENTIAL_LENGTH or len(client_secret) > MAX_CREDENTIAL_LENGTH
    presented = hash_secret("" if too_long else client_secret)
    async with database.session() as db:
        row = (
            await db.execute(
                select(
                    PartnerCredential.id,
                    PartnerCredential.partner_app_id,
                    PartnerCredential.secret_hash,
                    PartnerCredential.revoked_at,
                    PartnerApp.disabled,
                )
                .join(PartnerApp, PartnerApp.id == PartnerCredential.partner_app_id)
                .where(PartnerCredential.client_id == ("" if too_long else client_id))
            )
        ).first()
        stored = _DUMMY_HASH if row is None else row.secret_hash
        matches = hmac.compare_digest(presented, stored)
        if row is None or not matches or too_long or row.revoked_at or row.disabled:
            return None
        await db.execute(
            update(PartnerCredential)
            .where(
                PartnerCredential.id == row.id,
                or_(
                    PartnerCredential.last_used_at.is_(None),
                    PartnerCredential.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
        view = await _view(db, row.partner_app_id)
    return AuthenticatedApp(view, _generation(row.secret_hash))


async def credential_generation(database: Database, app_id: int) -> str | None:
    """The generation of the app's current secret; None once it is revoked or gone. A
    token whose generation differs was issued for an older secret."""
    async with database.session() as db:
        row = (
            await db.execute(
                select(PartnerCredential.secret_hash)
                .join(PartnerApp, PartnerApp.id == PartnerCredential.partner_app_id)
                .where(
                    PartnerApp.id == app_id,
                    PartnerApp.disabled.is_(False),
                    PartnerCredential.revoked_at.is_(None),
                )
            )
        ).first()
    return None if row is None else _generation(row.secret_hash)
