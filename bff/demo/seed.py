"""Demo data: an admin, two users, two tenants with two sub-tenants each.

Passwords are generated for every run and printed by ``bff demo``; the database
is a throwaway file, so nothing here outlives the demo.
"""

from __future__ import annotations

import dataclasses
import secrets

from bff.passwords import hash_password
from bff.store.database import Database
from bff.store.users import add_user, ensure_scope, map_user

TENANTS: dict[str, tuple[str, ...]] = {
    "acme": ("north", "south"),
    "globex": ("emea", "apac"),
}


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


def _password() -> str:
    return f"demo-{secrets.token_urlsafe(12)}"
