"""Vendor connections: validated as the settings are, secrets encrypted and write-only,
audited without a secret, put in the broker (dropping old tokens), loaded at start."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update

from bff.broker.broker import SHARED, TokenBroker
from bff.broker.connectors import (
    ApiKeyJwtConnector,
    HeaderExchangeConnector,
    PairTokenConnector,
    build_connector,
)
from bff.broker.metrics import BrokerMetrics
from bff.broker.policy import BrokerPolicy
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.crypto import SecretBox
from bff.demo.vendor import VendorConfig, create_vendor_app
from bff.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from bff.operations import connections as ops
from bff.operations import tokens
from bff.settings import Settings, UpstreamSettings
from bff.store.database import Database
from bff.store.models import AuditEntry, VendorConnection
from tests.conftest import random_key
from tests.operations.helpers import ACTOR, audit_actions

pytestmark = pytest.mark.anyio

VENDOR = "http://vendor.test"
PAIR = TokenScope("acme-eu", "acme", "north")


@pytest.fixture
def settings(vendor: VendorConfig) -> Settings:
    return Settings(
        secret_keys=(random_key(),),
        encryption_keys=(random_key(),),
        upstream=UpstreamSettings(
            base_url=VENDOR, api_key=vendor.api_key, api_secret=vendor.api_secret
        ),
        dashboard_delivery="post",
    )


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.encryption_keys)


@pytest.fixture
async def broker(
    vendor: VendorConfig, settings: Settings, clock: ManualClock
) -> AsyncIterator[TokenBroker]:
    transport = httpx2.ASGITransport(create_vendor_app(vendor))
    async with httpx2.AsyncClient(transport=transport) as client:
        broker = TokenBroker(
            {"default": build_connector(settings.upstream, clock)},
            client,
            BrokerMetrics(CollectorRegistry()),
            clock,
            policy=BrokerPolicy(attempts=1),
            background=False,
        )
        try:
            yield broker
        finally:
            await broker.aclose()


def header_exchange(vendor: VendorConfig, **changes: str) -> ops.ConnectionInput:
    values = {
        "id": "acme-eu",
        "kind": "header-exchange",
        "base_url": VENDOR,
        "api_key": vendor.api_key,
        "api_secret": vendor.api_secret,
        **changes,
    }
    return ops.ConnectionInput(
        values["id"], values["kind"], values["base_url"], values["api_key"], values["api_secret"]
    )


async def test_save_encrypts_audits_and_puts_the_connection_in_the_broker(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    broker: TokenBroker,
    vendor: VendorConfig,
) -> None:
    view = await ops.save_connection(
        database,
        box,
        ACTOR,
        header_exchange(vendor),
        settings=settings,
        clock=clock,
        create=True,
        broker=broker,
    )
    assert view.stored and not view.overrides_settings
    assert view.api_key == ops.SecretStatus(True, clock.now())
    assert view.upstream.api_key is None and view.upstream.api_secret is None
    assert vendor.api_secret not in repr(view)
    outcome = await tokens.try_connection(database, ACTOR, broker, PAIR)
    assert outcome.status == "ok" and outcome.expires_at is not None
    async with database.session() as db:
        row = await db.get(VendorConnection, "acme-eu")
        assert row is not None
        assert vendor.api_key not in (row.api_key_encrypted or "") + row.options
        details = list(await db.scalars(select(AuditEntry.detail).order_by(AuditEntry.id)))
    assert await audit_actions(database) == ["connection.save", "connection.test"]
    assert details[0] == (
        '{"base_url": "http://vendor.test", "kind": "header-exchange", '
        '"secrets_changed": ["api_key", "api_secret"]}'
    )
    with pytest.raises(AlreadyExistsError):
        await ops.save_connection(
            database,
            box,
            ACTOR,
            header_exchange(vendor),
            settings=settings,
            clock=clock,
            create=True,
        )


async def test_an_empty_secret_keeps_the_stored_one_for_the_same_kind(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    broker: TokenBroker,
    vendor: VendorConfig,
) -> None:
    save: dict[str, Any] = {"settings": settings, "clock": clock, "broker": broker}
    await ops.save_connection(database, box, ACTOR, header_exchange(vendor), create=True, **save)
    await broker.get(PAIR)
    clock.advance(3600)
    kept = header_exchange(vendor, api_key="", api_secret="")
    view = await ops.save_connection(database, box, ACTOR, kept, create=False, **save)
    assert view.api_key.set_at == view.api_secret.set_at == clock.now().replace(hour=0)
    assert broker.cached() == []  # even an unchanged save starts the connection afresh
    assert (await tokens.try_connection(database, ACTOR, broker, PAIR)).status == "ok"
    # Another kind: what the secret means changes, so it must be given again.
    other = dataclasses.replace(
        header_exchange(vendor, kind="oauth2-client-credentials", api_key="", api_secret=""),
        options={"pair_token_url": "/api/v1/partner/dashboard/token"},
    )
    with pytest.raises(InvalidInputError, match="API key is required") as refused:
        await ops.save_connection(database, box, ACTOR, other, create=False, **save)
    assert refused.value.field == "api_key"


@pytest.mark.parametrize(
    "moved",
    [
        {"base_url": "https://attacker.example"},
        {"options": {"pair_token_url": "https://attacker.example/token"}},
    ],
)
async def test_stored_secrets_never_follow_a_changed_vendor_address(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    broker: TokenBroker,
    vendor: VendorConfig,
    moved: dict[str, Any],
) -> None:
    save: dict[str, Any] = {"settings": settings, "clock": clock, "broker": broker}
    await ops.save_connection(database, box, ACTOR, header_exchange(vendor), create=True, **save)
    elsewhere = dataclasses.replace(header_exchange(vendor, api_key="", api_secret=""), **moved)
    with pytest.raises(InvalidInputError, match="address changed") as refused:
        await ops.save_connection(database, box, ACTOR, elsewhere, create=False, **save)
    assert refused.value.field == "api_key"
    # With the secrets typed again, the move is the admin's deliberate choice.
    typed = dataclasses.replace(header_exchange(vendor), **moved)
    await ops.save_connection(database, box, ACTOR, typed, create=False, **save)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"id": "no spaces"}, None, "connection id 'no spaces' may contain only"),
        ({"kind": ""}, "kind", "choose a connector kind"),
        ({"kind": "telepathy"}, "kind", "unknown value 'telepathy'"),
        ({"base_url": "javascript:alert(1)"}, "base_url", "is not a valid http/https URL"),
        ({"base_url": "https://vendor.test:99999"}, "base_url", "malformed port"),
        ({"base_url": "https://vendor.test/\n"}, "base_url", "no control characters"),
        ({"api_secret": ""}, "api_secret", "API secret is required"),
        ({"base_url": "https://key:secret@vendor.test"}, "base_url", "credentials in their own"),
        ({"base_url": "https://[::1"}, "base_url", "not a valid http/https URL"),
    ],
)
async def test_invalid_input_is_refused_naming_the_field(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    vendor: VendorConfig,
    changes: dict[str, str],
    field: str | None,
    message: str,
) -> None:
    values = header_exchange(vendor, **changes)
    with pytest.raises(InvalidInputError, match=message) as refused:
        await ops.save_connection(
            database, box, ACTOR, values, settings=settings, clock=clock, create=True
        )
    assert refused.value.field == field
    assert await audit_actions(database) == []


@pytest.mark.parametrize(
    ("kind", "options", "field", "message"),
    [
        ("header-exchange", {}, None, None),
        ("header-exchange", {"pair_token_url": "/x"}, None, None),  # not an option of the kind
        ("apikey-jwt", {}, "pair_token_url", "connection-wide apikey-jwt token"),
        ("apikey-jwt", {"pair_token_url": "/api/v1/partner/dashboard/token"}, None, None),
        ("static-bearer", {"auth_scheme": "basic"}, "api_username", "is required"),
        ("static-bearer", {"auth_scheme": "sideways"}, "auth_scheme", "unknown value"),
        ("oauth2-client-credentials", {"pair_token_style": "xml"}, "pair_token_style", "unknown"),
    ],
)
async def test_the_settings_rules_hold_for_stored_connections(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    vendor: VendorConfig,
    kind: str,
    options: dict[str, str],
    field: str | None,
    message: str | None,
) -> None:
    values = header_exchange(vendor, kind=kind)
    values = dataclasses.replace(values, options=options)
    save: dict[str, Any] = {"settings": settings, "clock": clock, "create": True}
    if message is None:
        view = await ops.save_connection(database, box, ACTOR, values, **save)
        assert view.upstream.kind == kind
        kept = options.get("pair_token_url") if kind != "header-exchange" else None
        assert view.upstream.pair_token_url == kept
        return
    with pytest.raises(InvalidInputError, match=message) as refused:
        await ops.save_connection(database, box, ACTOR, values, **save)
    assert refused.value.field == field


async def test_a_stored_default_overrides_the_settings_until_deleted(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    broker: TokenBroker,
    vendor: VendorConfig,
) -> None:
    default = TokenScope("default", "acme", "north")
    await broker.get(default)
    wrong = header_exchange(vendor, id="default", api_secret="wrong")
    save: dict[str, Any] = {"settings": settings, "clock": clock, "broker": broker}
    view = await ops.save_connection(database, box, ACTOR, wrong, create=True, **save)
    assert view.overrides_settings
    assert broker.cached() == []
    assert (await tokens.try_connection(database, ACTOR, broker, default)).status == "refused"
    [listed] = await ops.list_connections(database, settings)
    assert listed.stored
    await ops.delete_connection(database, ACTOR, "default", **save)
    assert (await tokens.try_connection(database, ACTOR, broker, default)).status == "ok"
    [listed] = await ops.list_connections(database, settings)
    assert not listed.stored and listed.api_secret == ops.SecretStatus(True)
    with pytest.raises(InvalidInputError, match="BFF_UPSTREAM_"):
        await ops.delete_connection(database, ACTOR, "default", **save)
    with pytest.raises(NotFoundError):
        await ops.delete_connection(database, ACTOR, "acme-eu", **save)
    assert await audit_actions(database) == [
        "connection.save",
        "connection.test",
        "connection.delete",
        "connection.test",
    ]


async def test_delete_removes_the_connection_from_the_broker(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    broker: TokenBroker,
    vendor: VendorConfig,
) -> None:
    save: dict[str, Any] = {"settings": settings, "clock": clock, "broker": broker}
    await ops.save_connection(database, box, ACTOR, header_exchange(vendor), create=True, **save)
    await broker.get(PAIR)
    await ops.delete_connection(database, ACTOR, "acme-eu", **save)
    assert not broker.has_connection("acme-eu") and broker.cached() == []
    with pytest.raises(NotFoundError):
        await tokens.try_connection(database, ACTOR, broker, PAIR)


async def test_load_skips_rows_that_cannot_be_used(
    database: Database,
    box: SecretBox,
    settings: Settings,
    clock: ManualClock,
    vendor: VendorConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    save: dict[str, Any] = {"settings": settings, "clock": clock, "create": True}
    await ops.save_connection(database, box, ACTOR, header_exchange(vendor), **save)
    jwt = header_exchange(vendor, id="jwt", kind="apikey-jwt", api_secret="")
    jwt = dataclasses.replace(jwt, options={"pair_token_url": "/api/v1/partner/dashboard/token"})
    await ops.save_connection(database, box, ACTOR, jwt, **save)
    await ops.save_connection(database, box, ACTOR, header_exchange(vendor, id="lost"), **save)
    async with database.session() as db:
        moved = await db.get(VendorConnection, "acme-eu")
        assert moved is not None
        # A ciphertext copied onto another row does not decrypt there.
        await db.execute(
            update(VendorConnection)
            .where(VendorConnection.id == "lost")
            .values(api_secret_encrypted=moved.api_secret_encrypted)
        )
    with caplog.at_level(logging.ERROR):
        loaded = await ops.load_connections(database, box, settings, clock)
    assert sorted(loaded) == ["acme-eu", "jwt"]
    assert isinstance(loaded["acme-eu"], HeaderExchangeConnector)
    assert isinstance(loaded["jwt"], PairTokenConnector)
    assert isinstance(loaded["jwt"].inner, ApiKeyJwtConnector)
    assert "stored vendor connection lost skipped" in caplog.text
    # The delivery mode changed since: a connection-wide token must not reach browsers.
    proxyless = dataclasses.replace(settings, dashboard_delivery="fragment")
    async with database.session() as db:
        await db.execute(
            update(VendorConnection).where(VendorConnection.id == "jwt").values(options="{}")
        )
    assert sorted(await ops.load_connections(database, box, proxyless, clock)) == ["acme-eu"]


async def test_token_actions_are_audited(
    database: Database, broker: TokenBroker, vendor: VendorConfig, clock: ManualClock
) -> None:
    scope = tokens.token_scope("default", " acme ", "north")
    assert scope == TokenScope("default", "acme", "north")
    assert tokens.token_scope("default", "", "") == TokenScope("default", SHARED, SHARED)
    with pytest.raises(InvalidInputError, match="sub-tenant id is empty"):
        tokens.token_scope("default", "acme", "")
    first = await tokens.try_connection(database, ACTOR, broker, scope)
    clock.advance(60)
    renewed = await tokens.refresh_token(database, ACTOR, broker, scope)
    assert renewed.status == "ok" and renewed.obtained_at == clock.now() != first.obtained_at
    assert await tokens.evict_token(database, ACTOR, broker, scope) == 1
    assert broker.cached() == []
    assert vendor.calls["token"] == 2
    async with database.session() as db:
        rows = (await db.execute(select(AuditEntry.action, AuditEntry.target))).all()
    assert [(a, t) for a, t in rows] == [
        ("connection.test", "default acme/north"),
        ("token.refresh", "default acme/north"),
        ("token.evict", "default acme/north"),
    ]
