from __future__ import annotations

import pytest
from sqlalchemy import select

from bff.operations import mappings
from bff.operations.live import Live
from bff.store.database import Database
from bff.store.models import AuditEntry
from tests.operations.helpers import ACTOR, FakeLive, all_mappings, seed

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
