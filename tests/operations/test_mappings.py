from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from bff.errors import AlreadyExistsError, InvalidInputError
from bff.operations import mappings
from bff.operations.live import Live
from bff.store.database import Database
from bff.store.models import AuditEntry, UserScope
from tests.operations.helpers import (
    ACTOR,
    FakeLive,
    all_mappings,
    audit_actions,
    racing_insert,
    seed,
)

pytestmark = pytest.mark.anyio


async def test_unmapping_one_pair_ends_its_sessions_and_is_audited(database: Database) -> None:
    ids = await seed(
        database,
        users=["ana@example.com"],
        pairs=[("acme", "north"), ("acme", "south")],
        mapped=[("ana@example.com", "acme", "north"), ("ana@example.com", "acme", "south")],
    )
    fake = FakeLive()
    live = Live(fake, fake)
    assert await mappings.unmap_pair(
        database, ACTOR, " Ana@Example.com ", ("acme", "north"), live=live
    )
    assert fake.revoked_scopes == [(ids["ana@example.com"], "acme", "north")]
    assert fake.forgotten == [ids["ana@example.com"]]
    assert await all_mappings(database) == [("ana@example.com", "acme", "south")]
    async with database.session() as db:
        entries = (await db.scalars(select(AuditEntry))).all()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        (ACTOR, "mapping.remove", "ana@example.com acme/north")
    ]


async def test_unmapping_a_pair_that_is_not_mapped_changes_nothing(database: Database) -> None:
    await seed(database, users=["ana@example.com"], pairs=[("acme", "north")])
    fake = FakeLive()
    assert not await mappings.unmap_pair(
        database, ACTOR, "ana@example.com", ("acme", "north"), live=Live(fake, fake)
    )
    assert fake.revoked_scopes == [] and fake.forgotten == []
    async with database.session() as db:
        assert (await db.scalars(select(AuditEntry))).all() == []


async def test_a_map_racing_another_is_already_exists_not_a_crash(database: Database) -> None:
    ids = await seed(database, users=["ana@example.com"], pairs=[("acme", "north")])
    racer = insert(UserScope).values(
        user_id=ids["ana@example.com"], tenant_id="acme", sub_tenant_id="north"
    )
    with (
        racing_insert(database, UserScope, racer),
        pytest.raises(AlreadyExistsError, match="already mapped to acme/north"),
    ):
        await mappings.map_pair(database, ACTOR, "ana@example.com", "acme", "north")
    assert await all_mappings(database) == [("ana@example.com", "acme", "north")]
    assert await audit_actions(database) == []


async def test_the_console_maps_only_to_existing_pairs(database: Database) -> None:
    await seed(database, users=["ana@example.com"], pairs=[("acme", "north")])
    with pytest.raises(InvalidInputError, match=r"no pair \(acme, nrth\)") as refused:
        await mappings.map_pair(
            database, ACTOR, "ana@example.com", "acme", "nrth", create_pair=False
        )
    assert refused.value.field == "sub_tenant_id"
    assert await mappings.map_pair(
        database, ACTOR, "ana@example.com", "acme", "north", create_pair=False
    )
    assert await all_mappings(database) == [("ana@example.com", "acme", "north")]


async def test_list_mappings_filters_and_pages(database: Database) -> None:
    users = [f"u{n:02}@example.com" for n in range(12)] + ["ann_x@example.com"]
    await seed(database, users, [("acme", "north"), ("beta", "one")],
               [(u, "acme", "north") for u in users] + [(users[0], "beta", "one")])  # fmt: skip
    first = await mappings.list_mappings(database, page_size=10)
    assert (len(first.items), first.next_page) == (10, 2)
    second = await mappings.list_mappings(database, page=2, page_size=10)
    assert (len(second.items), second.next_page) == (4, None)
    assert await mappings.list_mappings(database, email=" U00@ ") == mappings.MappingPage(
        [mappings.Mapping("u00@example.com", "acme", "north"),
         mappings.Mapping("u00@example.com", "beta", "one")],
        None,
    )  # fmt: skip
    by_pair = await mappings.list_mappings(database, tenant_id="beta", sub_tenant_id="one")
    assert [m.email for m in by_pair.items] == ["u00@example.com"]
    # LIKE wildcards in the filter are taken literally.
    underscore = await mappings.list_mappings(database, email="n_x")
    assert [m.email for m in underscore.items] == ["ann_x@example.com"]
    assert (await mappings.list_mappings(database, email="%")).items == []
