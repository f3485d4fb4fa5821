"""Demo data: an admin, two users, two tenants with two sub-tenants each, and (for
the demo partner page) a partner app.

Passwords and the partner app's client secret are generated for every run; the
passwords are printed by ``bff demo``, the secret only ever held in memory (the
database keeps its hash). The database is a throwaway file, so nothing here
outlives the demo.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime

from bff.operations.partner_apps import NewSecret, create_app
from bff.passwords import hash_password
from bff.store.database import Database
from bff.store.users import add_user, ensure_scope, map_user

TENANTS: dict[str, tuple[str, ...]] = {
    "acme": ("north", "south"),
    "globex": ("emea", "apac"),
}

PARTNER_APP_NAME = "Demo partner"
# The pairs the demo partner may open embed sessions for: one of each tenant.
PARTNER_PAIRS: tuple[tuple[str, str], ...] = (("acme", "north"), ("globex", "emea"))
# Who the audit log names for what the demo creates.
SEED_ACTOR = "demo"


@dataclasses.dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str = dataclasses.field(repr=False)
    is_admin: bool
    scopes: tuple[tuple[str, str], ...]


def demo_accounts() -> tuple[DemoAccount, ...]:
    """The demo's accounts with fresh passwords; the analyst may switch between three pairs."""
    return (
        DemoAccount("admin@demo.test", _password(), True, ()),
        DemoAccount(
            "analyst@demo.test",
            _password(),
            False,
            (("acme", "north"), ("acme", "south"), ("globex", "emea")),
        ),
        DemoAccount("viewer@demo.test", _password(), False, (("globex", "apac"),)),
    )


async def seed(database: Database, accounts: tuple[DemoAccount, ...]) -> None:
    """Create the tenants and the accounts with their mappings in an empty database."""
    async with database.session() as session:
        for tenant, sub_tenants in TENANTS.items():
            for sub_tenant in sub_tenants:
                await ensure_scope(session, tenant, sub_tenant)
        for account in accounts:
            user = await add_user(
                session, account.email, hash_password(account.password), is_admin=account.is_admin
            )
            for tenant, sub_tenant in account.scopes:
                await map_user(session, user, tenant, sub_tenant)


async def seed_partner_app(database: Database, origin: str, *, now: datetime) -> NewSecret:
    """The demo partner's app, framed only by ``origin`` and serving :data:`PARTNER_PAIRS`;
    the client secret is in the answer only (the database keeps its hash)."""
    return await create_app(
        database, SEED_ACTOR, PARTNER_APP_NAME, [origin], PARTNER_PAIRS, now=now
    )


def _password() -> str:
    return f"demo-{secrets.token_urlsafe(12)}"
