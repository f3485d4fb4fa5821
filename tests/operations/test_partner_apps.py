from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bff.errors import InvalidInputError, NotFoundError, RevokedError
from bff.operations import partner_apps
from bff.operations.live import Live
from bff.origins import clean_origin
from bff.store.database import Database
from bff.store.models import AuditEntry, PartnerCredential
from tests.operations.helpers import ACTOR, FakeLive, audit_actions, seed

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ACME = ("acme", "north")
GLOBEX = ("globex", "main")
ORIGIN = "https://partner.example"


async def _create(database: Database, name: str = "Partner") -> partner_apps.NewSecret:
    await seed(database, pairs=[ACME, GLOBEX])
    return await partner_apps.create_app(database, ACTOR, name, [ORIGIN], [ACME], now=NOW)


async def test_create_answers_the_app_and_a_secret_stored_only_as_its_hash(
    database: Database,
) -> None:
    created = await _create(database)
    app = created.app
    assert app.name == "Partner" and app.status == "active"
    assert app.client_id.startswith("bffp_") and len(app.client_id) == 27
    assert created.client_secret.startswith("bffs_") and len(created.client_secret) == 48
    assert (app.allowed_origins, app.pairs) == ((ORIGIN,), (ACME,))
    assert (app.created_at, app.last_used_at) == (NOW, None)
    assert "client_secret" not in repr(created)
    async with database.session() as db:
        stored = list(await db.scalars(select(PartnerCredential.secret_hash)))
        details = " ".join(await db.scalars(select(AuditEntry.detail)))
        targets = list(await db.scalars(select(AuditEntry.target)))
    assert stored == [partner_apps.hash_secret(created.client_secret)]
    assert created.client_secret not in details
    assert targets == [f"Partner (#{app.id})"]
    assert await partner_apps.list_apps(database) == [app]
    assert await partner_apps.get_app(database, app.id) == app


async def test_each_app_gets_its_own_client_id_and_secret(database: Database) -> None:
    first = await _create(database)
    second = await partner_apps.create_app(database, ACTOR, "Other", [], [], now=NOW)
    assert first.app.client_id != second.app.client_id
    assert first.client_secret != second.client_secret
    assert [a.name for a in await partner_apps.list_apps(database)] == ["Partner", "Other"]


async def test_authenticate_client_accepts_only_the_right_secret(database: Database) -> None:
    created = await _create(database)
    client_id, secret = created.app.client_id, created.client_secret
    found = await partner_apps.authenticate_client(database, client_id, secret, NOW)
    assert found is not None and found.app.id == created.app.id
    assert found.generation == await partner_apps.credential_generation(database, created.app.id)
    for wrong_id, wrong_secret in [
        (client_id, secret[:-1]),
        (client_id, secret + "x"),
        (client_id, ""),
        (client_id, "x" * 10_000),
        ("bffp_unknown", secret),
        ("", ""),
        (client_id.upper(), secret),
        (secret, client_id),
    ]:
        assert await partner_apps.authenticate_client(database, wrong_id, wrong_secret, NOW) is None


async def test_last_used_is_written_at_most_once_a_minute(database: Database) -> None:
    created = await _create(database)
    app_id, client_id, secret = created.app.id, created.app.client_id, created.client_secret
    await partner_apps.authenticate_client(database, client_id, secret, NOW)
    await partner_apps.authenticate_client(database, client_id, secret, NOW + timedelta(seconds=59))
    assert (await partner_apps.get_app(database, app_id)).last_used_at == NOW
    later = NOW + timedelta(seconds=61)
    await partner_apps.authenticate_client(database, client_id, secret, later)
    assert (await partner_apps.get_app(database, app_id)).last_used_at == later
    await partner_apps.authenticate_client(database, client_id, "wrong", later + timedelta(hours=1))
    assert (await partner_apps.get_app(database, app_id)).last_used_at == later


async def test_a_new_secret_replaces_the_old_one_at_once(database: Database) -> None:
    created = await _create(database)
    app_id, client_id = created.app.id, created.app.client_id
    old_generation = await partner_apps.credential_generation(database, app_id)
    fake = FakeLive()
    later = NOW + timedelta(hours=1)
    renewed = await partner_apps.regenerate_secret(
        database, ACTOR, app_id, now=later, live=Live(fake, fake)
    )
    assert renewed.app.client_id == client_id and renewed.app.secret_created_at == later
    assert renewed.client_secret != created.client_secret
    assert fake.revoked_partner_apps == [app_id]
    assert (
        await partner_apps.authenticate_client(database, client_id, created.client_secret, later)
        is None
    )
    found = await partner_apps.authenticate_client(
        database, client_id, renewed.client_secret, later
    )
    assert found is not None and found.app.id == app_id
    new_generation = await partner_apps.credential_generation(database, app_id)
    assert new_generation is not None and new_generation != old_generation
    assert found.generation == new_generation
    assert await audit_actions(database) == ["partner_app.create", "partner_app.regenerate_secret"]


async def test_revoking_ends_the_secret_the_tokens_and_the_sessions(database: Database) -> None:
    created = await _create(database)
    app_id = created.app.id
    fake = FakeLive()
    revoked = await partner_apps.revoke_app(database, ACTOR, app_id, now=NOW, live=Live(fake, fake))
    assert revoked.status == "revoked"
    assert fake.revoked_partner_apps == [app_id]
    assert await partner_apps.credential_generation(database, app_id) is None
    assert (
        await partner_apps.authenticate_client(
            database, created.app.client_id, created.client_secret, NOW
        )
        is None
    )
    async with database.session() as db:
        assert await db.scalar(select(PartnerCredential.revoked_at)) == NOW
    with pytest.raises(RevokedError):
        await partner_apps.regenerate_secret(database, ACTOR, app_id, now=NOW)
    again = await partner_apps.revoke_app(database, ACTOR, app_id, now=NOW + timedelta(hours=1))
    assert again == revoked
    assert await audit_actions(database) == ["partner_app.create", "partner_app.revoke"]


async def test_unknown_apps_are_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError, match="no partner app 7"):
        await partner_apps.get_app(database, 7)
    with pytest.raises(NotFoundError):
        await partner_apps.update_app(database, ACTOR, 7, name="x")
    with pytest.raises(NotFoundError):
        await partner_apps.regenerate_secret(database, ACTOR, 7, now=NOW)
    with pytest.raises(NotFoundError):
        await partner_apps.revoke_app(database, ACTOR, 7, now=NOW)
    assert await partner_apps.credential_generation(database, 7) is None


async def test_update_changes_what_is_given_and_a_removed_pair_ends_sessions(
    database: Database,
) -> None:
    created = await _create(database)
    app_id = created.app.id
    fake = FakeLive()
    live = Live(fake, fake)
    added = await partner_apps.update_app(
        database, ACTOR, app_id, pairs=[ACME, GLOBEX, GLOBEX], live=live
    )
    assert added.pairs == (ACME, GLOBEX) and added.allowed_origins == (ORIGIN,)
    assert fake.revoked_partner_apps == []
    changed = await partner_apps.update_app(
        database,
        ACTOR,
        app_id,
        name=" Renamed ",
        allowed_origins=["HTTPS://Other.Example:443", "http://localhost:3000"],
        pairs=[GLOBEX],
        live=live,
    )
    assert changed.name == "Renamed" and changed.pairs == (GLOBEX,)
    assert changed.allowed_origins == ("https://other.example", "http://localhost:3000")
    assert fake.revoked_partner_apps == [app_id]
    unchanged = await partner_apps.update_app(database, ACTOR, app_id, name="Renamed", live=live)
    assert unchanged == changed
    assert await audit_actions(database) == [
        "partner_app.create",
        "partner_app.update",
        "partner_app.update",
    ]
    async with database.session() as db:
        detail = await db.scalar(select(AuditEntry.detail).order_by(AuditEntry.id.desc()))
    assert json.loads(detail or "{}") == {
        "name": "Renamed",
        "allowed_origins": ["https://other.example", "http://localhost:3000"],
        "pairs_added": [],
        "pairs_removed": [list(ACME)],
    }


async def test_pairs_that_do_not_exist_are_refused(database: Database) -> None:
    created = await _create(database)
    with pytest.raises(InvalidInputError, match=r"no pair \(acme, south\)") as refused:
        await partner_apps.create_app(database, ACTOR, "X", [], [ACME, ("acme", "south")], now=NOW)
    assert refused.value.field == "pairs"
    with pytest.raises(InvalidInputError) as bad_id:
        await partner_apps.update_app(database, ACTOR, created.app.id, pairs=[("acme", "no/pe")])
    assert bad_id.value.field == "pairs"
    assert [a.name for a in await partner_apps.list_apps(database)] == ["Partner"]
    assert (await partner_apps.get_app(database, created.app.id)).pairs == (ACME,)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\there"])
async def test_bad_names_are_refused(database: Database, name: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await partner_apps.create_app(database, ACTOR, name, [], [], now=NOW)
    assert refused.value.field == "name"
    assert await partner_apps.list_apps(database) == []


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://partner.example", "https://partner.example"),
        ("  https://Partner.Example/ ", "https://partner.example"),
        ("HTTPS://partner.example:443", "https://partner.example"),
        ("https://partner.example:8443", "https://partner.example:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://localhost:80", "http://localhost"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://faß.example", "https://xn--fa-hia.example"),
        ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
        ("https://10.0.0.1", "https://10.0.0.1"),
    ],
)
def test_good_origins_are_normalised(given: str, origin: str) -> None:
    assert clean_origin(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "",
        "partner.example",
        "//partner.example",
        "http://partner.example",
        "http://[::1]",
        "ftp://partner.example",
        "javascript:alert(1)",
        "https://*.partner.example",
        "*",
        "null",
        "https://partner.example/path",
        "https://partner.example?x=1",
        "https://partner.example#top",
        "https://user:pw@partner.example",
        "https://partner.example:0",
        "https://partner.example:99999",
        "https://partner.example:",
        "https://partner.example:https",
        "https://",
        "https://part ner.example",
        "https://partner..example",
        "https://partner.example.",
        "https://-partner.example",
        "https://partner_x.example",
        "https://partner.example;script-src",
        "https://a.example https://b.example",
        "https://[::1",
        "https://[zz::1]",
        "https://" + "a" * 300 + ".example",
    ],
)
def test_bad_origins_are_refused_naming_the_field(given: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        clean_origin(given)
    assert refused.value.field == "allowed_origins"
    assert str(refused.value).startswith("allowed_origins: ")


def test_origins_are_deduplicated_in_order_and_capped() -> None:
    assert partner_apps.clean_origins(
        ["https://b.example", "https://a.example", "HTTPS://B.example/"]
    ) == ["https://b.example", "https://a.example"]
    with pytest.raises(InvalidInputError, match="more than 50"):
        partner_apps.clean_origins(f"https://a{n}.example" for n in range(51))
