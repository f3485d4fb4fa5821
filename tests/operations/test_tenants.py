from __future__ import annotations

import pytest
from sqlalchemy import insert

from bff.errors import AlreadyExistsError, InUseError, NotFoundError
from bff.operations import tenants
from bff.operations.live import Live
from bff.store.database import Database
from bff.store.models import PartnerApp, PartnerAppScope, SubTenant, Tenant
from tests.operations.helpers import (
    ACTOR,
    FakeLive,
    all_mappings,
    audit_actions,
    racing_insert,
    seed,
)

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
    live = FakeLive()
    await tenants.delete_sub_tenant(
        database, ACTOR, "acme", "north", cascade=True, live=Live(live, live, live)
    )
    assert (await tenants.list_tenants(database))[0].sub_tenants == []
    # The app's embed sessions may be showing the removed pair.
    assert live.revoked_partner_apps == [app.id]


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


async def test_deleting_purges_the_vendor_tokens_of_the_removed_pairs(database: Database) -> None:
    await seed(database, pairs=[("acme", "north"), ("acme", "south"), ("beta", "one")])
    live = FakeLive()
    await tenants.delete_sub_tenant(database, ACTOR, "acme", "north", live=Live(live, live, live))
    await tenants.delete_tenant(database, ACTOR, "beta", live=Live(live, live, live))
    assert live.purged_pairs == [("acme", "north"), ("beta", None)]
    assert await audit_actions(database) == ["sub_tenant.delete", "tenant.delete"]


async def test_a_refused_delete_purges_nothing(database: Database) -> None:
    await seed(database, ["ann@example.com"], [("acme", "north")],
               [("ann@example.com", "acme", "north")])  # fmt: skip
    live = FakeLive()
    with pytest.raises(InUseError, match="1 mapping"):
        await tenants.delete_tenant(database, ACTOR, "acme", live=Live(live, live, live))
    assert live.purged_pairs == []


async def test_usage_counts_what_a_delete_would_remove(database: Database) -> None:
    await seed(
        database,
        ["ann@example.com", "bob@example.com"],
        [("acme", "north"), ("acme", "south")],
        [("ann@example.com", "acme", "north"), ("bob@example.com", "acme", "north"),
         ("bob@example.com", "acme", "south")],
    )  # fmt: skip
    async with database.session() as db:
        app = PartnerApp(name="shop")
        db.add(app)
        await db.flush()
        db.add(PartnerAppScope(partner_app_id=app.id, tenant_id="acme", sub_tenant_id="south"))
    assert await tenants.usage(database, "acme") == tenants.Usage(2, 3, 1)
    north = await tenants.usage(database, "acme", "north")
    assert (north, north.in_use) == (tenants.Usage(1, 2, 0), True)
    with pytest.raises(NotFoundError, match="no sub-tenant west of acme"):
        await tenants.usage(database, "acme", "west")
    with pytest.raises(NotFoundError, match="no tenant beta"):
        await tenants.usage(database, "beta")


async def test_rename_a_sub_tenant(database: Database) -> None:
    await seed(database, pairs=[("acme", "north")])
    await tenants.rename_sub_tenant(database, ACTOR, "acme", " north ", " Nörth <i> ")
    assert (await tenants.list_tenants(database))[0].sub_tenants == [
        tenants.SubTenantView("north", "Nörth <i>")
    ]
    with pytest.raises(NotFoundError):
        await tenants.rename_sub_tenant(database, ACTOR, "acme", "south", "x")
    assert await audit_actions(database) == ["sub_tenant.rename"]


async def test_a_create_racing_another_is_already_exists_not_a_crash(database: Database) -> None:
    with (
        racing_insert(database, Tenant, insert(Tenant).values(id="acme", name="first")),
        pytest.raises(AlreadyExistsError, match="a tenant acme already exists"),
    ):
        await tenants.create_tenant(database, ACTOR, "acme", "second")
    racer = insert(SubTenant).values(tenant_id="acme", id="north", name="first")
    with (
        racing_insert(database, SubTenant, racer),
        pytest.raises(AlreadyExistsError, match="sub-tenant north of acme already exists"),
    ):
        await tenants.create_sub_tenant(database, ACTOR, "acme", "north", "second")
    [acme] = await tenants.list_tenants(database)
    assert (acme.name, acme.sub_tenants) == ("first", [tenants.SubTenantView("north", "first")])
    assert await audit_actions(database) == []
