from __future__ import annotations

import pytest

from bff.errors import InUseError
from bff.operations import tenants
from bff.operations.live import Live
from bff.store.database import Database
from bff.store.models import PartnerApp, PartnerAppScope
from tests.operations.helpers import ACTOR, FakeLive, all_mappings, seed

pytestmark = pytest.mark.anyio


async def test_a_partner_app_keeps_a_pair_in_use(database: Database) -> None:
    await seed(database, pairs=[("acme", "north")])
    async with database.session() as db:
        app = PartnerApp(name="shop")
        db.add(app)
        await db.flush()
        db.add(PartnerAppScope(partner_app_id=app.id, tenant_id="acme", sub_tenant_id="north"))
    with pytest.raises(InUseError, match="partner apps"):
        await tenants.delete_sub_tenant(database, ACTOR, "acme", "north")
    await tenants.delete_sub_tenant(database, ACTOR, "acme", "north", cascade=True)
    assert (await tenants.list_tenants(database))[0].sub_tenants == []


async def test_a_cascade_ends_the_sessions_of_every_removed_mapping(database: Database) -> None:
    ids = await seed(
        database,
        ["ann@example.com", "bob@example.com"],
        [("acme", "north"), ("acme", "south"), ("beta", "one")],
        [("ann@example.com", "acme", "north"), ("bob@example.com", "acme", "south"),
         ("bob@example.com", "beta", "one")],
    )  # fmt: skip
    live = FakeLive()
    with pytest.raises(InUseError):
        await tenants.delete_tenant(database, ACTOR, "acme", live=Live(live, live))
    assert live.revoked_scopes == []
    await tenants.delete_tenant(database, ACTOR, "acme", cascade=True, live=Live(live, live))
    assert sorted(live.revoked_scopes) == [
        (ids["ann@example.com"], "acme", "north"),
        (ids["bob@example.com"], "acme", "south"),
    ]
    assert await all_mappings(database) == [("bob@example.com", "beta", "one")]
    assert [t.id for t in await tenants.list_tenants(database)] == ["beta"]


async def test_rename_keeps_unicode_and_refuses_control_characters(database: Database) -> None:
    await tenants.create_tenant(database, ACTOR, "acme")
    await tenants.rename_tenant(database, ACTOR, "acme", "  Ünïcødé <b>  ")
    assert (await tenants.list_tenants(database))[0].name == "Ünïcødé <b>"
    with pytest.raises(ValueError, match="control characters"):
        await tenants.rename_tenant(database, ACTOR, "acme", "a\x00b")
