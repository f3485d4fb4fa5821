"""Vendor connections: list, save, delete, load at start-up (their tokens:
:mod:`bff.operations.tokens`).

Connection ``"default"`` comes from the ``BFF_UPSTREAM_*`` settings. A connection
stored in the database under the id ``"default"`` overrides it for as long as the
row exists; deleting the row brings the settings' connection back. Other stored
connections sit beside it under their own ids.

Secrets are write-only: they are encrypted bound to their row, never shown, never
audited. A save with an empty secret keeps the stored one (for the same kind only:
what the secret means depends on the kind). The second secret is the API secret
(header-exchange), the client secret (oauth2-client-credentials) or the optional
extra authentication parameter (apikey-jwt); static-bearer has none. When each was
last set is kept in the row's options, so the console can say "set on DATE".

A save is checked exactly as the settings are (settings' own reader and checks,
then the connector factory), audited in the same transaction, and then replaces
the connector in the running broker, which drops every token the old one obtained,
and announces the change: every other process sharing the token cache (Redis)
reloads that connection from the database with :func:`connection_loader`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from bff import identifiers
from bff.broker.broker import TokenBroker
from bff.broker.connectors import AnyConnector, build_connector
from bff.clock import Clock
from bff.crypto import SecretBox
from bff.errors import (
    AlreadyExistsError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    SecretDecryptionError,
)
from bff.logs import register_secret
from bff.operations import audit
from bff.settings import (
    CONNECTOR_KINDS,
    ConnectorKind,
    EnvReader,
    Settings,
    UpstreamSettings,
    check_connection_wide_delivery,
    read_upstream,
)
from bff.store import connections as store
from bff.store.database import Database, conflict_means_exists
from bff.store.models import VendorConnection

logger = logging.getLogger(__name__)

DEFAULT = "default"
MAX_TEXT = 2000
# The options each kind reads; others a form sends are not stored.
KIND_OPTIONS: dict[ConnectorKind, tuple[str, ...]] = {
    "header-exchange": (),
    "apikey-jwt": ("auth_url", "single_use", "pair_token_url", "pair_token_style"),
    "oauth2-client-credentials": (
        "auth_url",
        "basic_auth",
        "realm",
        "pair_token_url",
        "pair_token_style",
    ),
    "static-bearer": (
        "whoami_url",
        "auth_scheme",
        "api_username",
        "pair_token_url",
        "pair_token_style",
    ),
}
_TEXT_OPTIONS = ("auth_url", "realm", "whoami_url", "api_username", "pair_token_url")
_URLS = frozenset({"base_url", "auth_url", "whoami_url", "pair_token_url"})
# Where a setting's complaint belongs on the form.
_FIELDS = {
    "BFF_UPSTREAM_KIND": "kind",
    "BFF_UPSTREAM_BASE_URL": "base_url",
    "BFF_UPSTREAM_API_KEY": "api_key",
    "BFF_UPSTREAM_API_SECRET": "api_secret",
    "BFF_UPSTREAM_AUTH_PARAM": "api_secret",
    "BFF_UPSTREAM_AUTH_URL": "auth_url",
    "BFF_UPSTREAM_REALM": "realm",
    "BFF_UPSTREAM_WHOAMI_URL": "whoami_url",
    "BFF_UPSTREAM_AUTH_SCHEME": "auth_scheme",
    "BFF_UPSTREAM_API_USERNAME": "api_username",
    "BFF_UPSTREAM_PAIR_TOKEN_URL": "pair_token_url",
    "BFF_UPSTREAM_PAIR_TOKEN_STYLE": "pair_token_style",
    "BFF_UPSTREAM_SINGLE_USE": "single_use",
    "BFF_UPSTREAM_BASIC_AUTH": "basic_auth",
    "BFF_DASHBOARD_DELIVERY": "pair_token_url",
}
_LABELS = {
    "base_url": "base URL",
    "api_key": "API key",
    "api_secret": "API secret",
    "auth_url": "authentication endpoint",
    "whoami_url": "who-am-I endpoint",
    "auth_scheme": "key presentation",
    "api_username": "API username",
    "pair_token_url": "per-pair token endpoint",
    "pair_token_style": "per-pair token style",
    "single_use": "single-use",
    "basic_auth": "HTTP Basic",
}
Secret = Literal["api_key", "api_secret"]


@dataclasses.dataclass(frozen=True)
class ConnectionInput:
    """What the admin submitted. An empty secret keeps the stored one."""

    id: str
    kind: str
    base_url: str
    api_key: str = dataclasses.field(default="", repr=False)
    api_secret: str = dataclasses.field(default="", repr=False)
    clear_api_secret: bool = False
    options: Mapping[str, str | bool] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SecretStatus:
    set: bool
    # When it was stored; None for a secret from the settings.
    set_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class ConnectionView:
    """A connection without its secrets: ``upstream`` holds none of them."""

    id: str
    stored: bool
    # A stored "default" while BFF_UPSTREAM_* configure one too.
    overrides_settings: bool
    upstream: UpstreamSettings
    api_key: SecretStatus
    api_secret: SecretStatus
    updated_at: datetime | None


# -- reading -----------------------------------------------------------------------------


async def list_connections(database: Database, settings: Settings) -> list[ConnectionView]:
    """The settings' connection (unless a stored one overrides it), then every stored one."""
    async with database.session() as db:
        rows = list(await db.scalars(select(VendorConnection).order_by(VendorConnection.id)))
    views = [_stored_view(row, settings) for row in rows]
    if settings.upstream.configured and DEFAULT not in {row.id for row in rows}:
        views.insert(0, _settings_view(settings))
    return views


async def get_connection(
    database: Database, settings: Settings, connection_id: str
) -> ConnectionView:
    async with database.session() as db:
        row = await db.get(VendorConnection, connection_id)
    if row is not None:
        return _stored_view(row, settings)
    if connection_id == DEFAULT and settings.upstream.configured:
        return _settings_view(settings)
    raise NotFoundError(f"no vendor connection {connection_id}")


def _settings_view(settings: Settings) -> ConnectionView:
    upstream = settings.upstream
    second = upstream.auth_param if upstream.kind == "apikey-jwt" else upstream.api_secret
    return ConnectionView(
        id=DEFAULT,
        stored=False,
        overrides_settings=False,
        upstream=dataclasses.replace(upstream, api_key=None, api_secret=None, auth_param=None),
        api_key=SecretStatus(bool(upstream.api_key)),
        api_secret=SecretStatus(bool(second)),
        updated_at=None,
    )


def _stored_view(row: VendorConnection, settings: Settings) -> ConnectionView:
    options = _options(row)
    set_at = options.get("secrets_set_at")
    dates = set_at if isinstance(set_at, dict) else {}
    return ConnectionView(
        id=row.id,
        stored=True,
        overrides_settings=row.id == DEFAULT and settings.upstream.configured,
        upstream=_upstream(row, options, None, None, settings.upstream),
        api_key=SecretStatus(row.api_key_encrypted is not None, _date(dates.get("api_key"))),
        api_secret=SecretStatus(
            row.api_secret_encrypted is not None, _date(dates.get("api_secret"))
        ),
        updated_at=row.updated_at,
    )


# -- saving and deleting -------------------------------------------------------------------


async def save_connection(
    database: Database,
    box: SecretBox,
    actor: str,
    values: ConnectionInput,
    *,
    settings: Settings,
    clock: Clock,
    create: bool,
    broker: TokenBroker | None = None,
) -> ConnectionView:
    """Create (``create``) or update a stored connection, then put it in ``broker``."""
    connection_id = identifiers.tenant_id(values.id, "connection id")
    if not values.kind.strip():
        raise InvalidInputError("kind: choose a connector kind", field="kind")
    with _as_input_error():
        kind = EnvReader({"BFF_UPSTREAM_KIND": values.kind}).choice(
            "BFF_UPSTREAM_KIND", CONNECTOR_KINDS, "header-exchange"
        )
    options = {name: values.options.get(name, "") for name in KIND_OPTIONS[kind]}
    exists = f"a connection {connection_id} exists already"
    with conflict_means_exists(exists):  # two creates at once
        async with database.session() as db:
            row = await db.get(VendorConnection, connection_id)
            if create and row is not None:
                raise AlreadyExistsError(exists)
            if not create and row is None:
                raise NotFoundError(f"no stored vendor connection {connection_id}")
            api_key, api_secret = _secrets(box, row, kind, values)
            clean = dataclasses.replace(values, id=connection_id, kind=kind, options=options)
            upstream, connector = _validate(clean, api_key, api_secret, settings, clock)
            register_secret(api_key)
            register_secret(api_secret)
            changed = _changed_secrets(values, row, kind)
            stored_options = _stored_options(upstream, row, changed, clock)
            assert upstream.base_url is not None  # build_connector requires it
            row = await store.save_connection(
                db,
                box,
                connection_id,
                kind=kind,
                base_url=upstream.base_url,
                api_key=api_key,
                api_secret=api_secret,
                options=stored_options,
            )
            row.updated_at = clock.now()  # the injected clock, like the secrets' dates
            await audit.record(
                db,
                actor,
                "connection.save",
                connection_id,
                {"kind": kind, "base_url": upstream.base_url, "secrets_changed": changed},
            )
            view = _stored_view(row, settings)
    if broker is not None:
        await broker.replace_connection(connection_id, connector)
        await broker.announce_connection(connection_id)
    return view


async def delete_connection(
    database: Database,
    actor: str,
    connection_id: str,
    *,
    settings: Settings,
    clock: Clock,
    broker: TokenBroker | None = None,
) -> None:
    """Delete a stored connection and its tokens; a deleted "default" falls back to the
    settings' connection, which itself cannot be deleted here."""
    async with database.session() as db:
        result = await db.execute(
            delete(VendorConnection).where(VendorConnection.id == connection_id)
        )
        if not getattr(result, "rowcount", 0):
            if connection_id == DEFAULT and settings.upstream.configured:
                raise InvalidInputError(
                    "connection default comes from the BFF_UPSTREAM_* settings; "
                    "change them to change it",
                    field="id",
                )
            raise NotFoundError(f"no stored vendor connection {connection_id}")
        await audit.record(db, actor, "connection.delete", connection_id)
    if broker is None:
        return
    if connection_id == DEFAULT and settings.upstream.configured:
        await broker.replace_connection(DEFAULT, build_connector(settings.upstream, clock))
    else:
        await broker.remove_connection(connection_id)
    await broker.announce_connection(connection_id)


async def load_connections(
    database: Database, box: SecretBox, settings: Settings, clock: Clock
) -> dict[str, AnyConnector]:
    """The connector of every usable stored connection, for the broker at start-up.

    A row whose secrets do not decrypt (a lost key) or whose settings no longer pass
    (the dashboard delivery changed) is logged and skipped: the rest still serve.
    """
    async with database.session() as db:
        rows = list(await db.scalars(select(VendorConnection).order_by(VendorConnection.id)))
    found: dict[str, AnyConnector] = {}
    for row in rows:
        connector = _stored_connector(row, box, settings, clock)
        if connector is not None:
            found[row.id] = connector
    return found


def connection_loader(
    database: Database, box: SecretBox, settings: Settings, clock: Clock
) -> Callable[[str], Awaitable[AnyConnector | None]]:
    """Reads one connection afresh, for a broker told that another process saved or
    deleted it: the stored one, else the settings' "default", else None (gone)."""

    async def load(connection_id: str) -> AnyConnector | None:
        async with database.session() as db:
            row = await db.get(VendorConnection, connection_id)
        connector = None if row is None else _stored_connector(row, box, settings, clock)
        if connector is None and connection_id == DEFAULT and settings.upstream.configured:
            connector = build_connector(settings.upstream, clock)
        return connector

    return load


def _stored_connector(
    row: VendorConnection, box: SecretBox, settings: Settings, clock: Clock
) -> AnyConnector | None:
    try:
        api_key, api_secret = store.connection_secrets(box, row)
        upstream = _upstream(row, _options(row), api_key, api_secret, settings.upstream)
        check_connection_wide_delivery(upstream, settings.dashboard_delivery)
        connector = build_connector(upstream, clock)
    except (SecretDecryptionError, ConfigurationError, InvalidInputError) as exc:
        logger.error("stored vendor connection %s skipped: %s", row.id, exc)
        return None
    register_secret(api_key)
    register_secret(api_secret)
    return connector


def _secrets(
    box: SecretBox, row: VendorConnection | None, kind: str, values: ConnectionInput
) -> tuple[str | None, str | None]:
    """The secrets to store: the submitted ones, else the stored ones of the same kind that
    go to the same vendor hosts (else a changed URL would send them to a new host)."""
    stored: tuple[str | None, str | None] = (None, None)
    if row is not None and row.kind == kind and not (values.api_key and values.api_secret):
        if _destinations(row.base_url, _options(row)) != _destinations(
            values.base_url, values.options
        ):
            raise InvalidInputError(
                "the vendor's address changed: enter the API key and secret again",
                field="api_key",
            )
        try:
            stored = store.connection_secrets(box, row)
        except SecretDecryptionError:
            raise InvalidInputError(
                "the stored secrets cannot be decrypted with BFF_ENCRYPTION_KEYS; enter them again",
                field="api_key",
            ) from None
    api_key = values.api_key.strip() or stored[0]
    api_secret = values.api_secret.strip() or stored[1]
    if values.clear_api_secret or kind == "static-bearer":  # static-bearer has no second secret
        api_secret = None
    return api_key, api_secret


def _destinations(base_url: str, options: Mapping[str, Any]) -> frozenset[str]:
    """Every origin a connection's credentials are sent to (relative URLs stay on the base)."""
    found = set()
    for name in sorted(_URLS):
        url = base_url if name == "base_url" else options.get(name)
        if isinstance(url, str) and url.strip():
            try:
                parts = urlsplit(url.strip())
            except ValueError:
                parts = urlsplit("")
            found.add(f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.netloc else "")
    return frozenset(found - {""})


def _changed_secrets(
    values: ConnectionInput, row: VendorConnection | None, kind: str
) -> list[Secret]:
    """Which secrets this save sets anew (a new row or a new kind sets both)."""
    fresh = row is None or row.kind != kind
    changed: list[Secret] = []
    if fresh or values.api_key.strip():
        changed.append("api_key")
    if fresh or values.api_secret.strip() or values.clear_api_secret:
        changed.append("api_secret")
    return changed


def _stored_options(
    upstream: UpstreamSettings, row: VendorConnection | None, changed: list[Secret], clock: Clock
) -> dict[str, Any]:
    options: dict[str, Any] = {
        name: getattr(upstream, name) for name in KIND_OPTIONS[upstream.kind]
    }
    previous = _options(row).get("secrets_set_at") if row is not None else None
    dates = dict(previous) if isinstance(previous, dict) else {}
    now = clock.now().isoformat()
    secrets = {"api_key": upstream.api_key, "api_secret": _second_secret(upstream)}
    for name in changed:
        dates[name] = now if secrets[name] else None
    options["secrets_set_at"] = dates
    return options


# -- validation: the settings' rules, then the connector factory ---------------------------


def _validate(
    values: ConnectionInput,
    api_key: str | None,
    api_secret: str | None,
    settings: Settings,
    clock: Clock,
) -> tuple[UpstreamSettings, AnyConnector]:
    for name in ("base_url", *_TEXT_OPTIONS):
        text = values.base_url if name == "base_url" else values.options.get(name, "")
        if isinstance(text, str) and (len(text) > MAX_TEXT or any(ord(c) < 32 for c in text)):
            raise InvalidInputError(
                f"{_LABELS.get(name, name)}: at most {MAX_TEXT} characters, no control characters",
                field=name,
            )
        if name in _URLS and isinstance(text, str) and _has_userinfo(name, text):
            # It would be shown and audited like any URL; credentials go in their fields.
            raise InvalidInputError(
                f"{_LABELS.get(name, name)}: put credentials in their own fields, not in the URL",
                field=name,
            )
    with _as_input_error():
        upstream = _parse(values, api_key, api_secret, settings.upstream)
        check_connection_wide_delivery(upstream, settings.dashboard_delivery)
        return upstream, build_connector(upstream, clock)
    raise AssertionError("unreachable")


def _has_userinfo(name: str, url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # an unbalanced [ for IPv6, which urlsplit refuses by raising
        raise InvalidInputError(
            f"{_LABELS.get(name, name)} is not a valid http/https URL", field=name
        ) from None


@contextlib.contextmanager
def _as_input_error() -> Iterator[None]:
    """A setting's complaint, as a refusal naming the form's field."""
    try:
        yield
    except ConfigurationError as exc:
        field = _FIELDS.get(exc.setting, "kind")
        label = _LABELS.get(field, field)
        joiner = " " if exc.problem.startswith(("is ", "has ", "must ")) else ": "
        raise InvalidInputError(f"{label}{joiner}{exc.problem}", field=field) from None


def _env(values: ConnectionInput, api_key: str, second_secret: str) -> dict[str, str]:
    """The form as the ``BFF_UPSTREAM_*`` values the settings would hold; the second
    secret is the API secret, or for apikey-jwt its extra authentication parameter."""
    option = values.options

    def text(name: str) -> str:
        value = option.get(name, "")
        return value if isinstance(value, str) else ""

    def flag(name: str) -> str:
        return "true" if option.get(name) is True else "false"

    apikey_jwt = values.kind == "apikey-jwt"
    has_api_secret = values.kind not in ("apikey-jwt", "static-bearer")
    return {
        "BFF_UPSTREAM_KIND": values.kind,
        "BFF_UPSTREAM_BASE_URL": values.base_url,
        "BFF_UPSTREAM_API_KEY": api_key,
        "BFF_UPSTREAM_API_SECRET": second_secret if has_api_secret else "",
        "BFF_UPSTREAM_AUTH_PARAM": second_secret if apikey_jwt else "",
        "BFF_UPSTREAM_AUTH_URL": text("auth_url"),
        "BFF_UPSTREAM_SINGLE_USE": flag("single_use"),
        "BFF_UPSTREAM_BASIC_AUTH": flag("basic_auth"),
        "BFF_UPSTREAM_REALM": text("realm"),
        "BFF_UPSTREAM_WHOAMI_URL": text("whoami_url"),
        "BFF_UPSTREAM_AUTH_SCHEME": text("auth_scheme"),
        "BFF_UPSTREAM_API_USERNAME": text("api_username"),
        "BFF_UPSTREAM_PAIR_TOKEN_URL": text("pair_token_url"),
        "BFF_UPSTREAM_PAIR_TOKEN_STYLE": text("pair_token_style"),
    }


def _parse(
    values: ConnectionInput,
    api_key: str | None,
    api_secret: str | None,
    defaults: UpstreamSettings,
) -> UpstreamSettings:
    """The connection as :class:`UpstreamSettings`, read through the settings' own checks.
    Timeout and concurrency are the broker's, so they come from the settings."""
    upstream = read_upstream(_env(values, api_key or "", api_secret or ""))
    return dataclasses.replace(
        upstream, timeout=defaults.timeout, max_concurrency=defaults.max_concurrency
    )


def _upstream(
    row: VendorConnection,
    options: Mapping[str, Any],
    api_key: str | None,
    api_secret: str | None,
    defaults: UpstreamSettings,
) -> UpstreamSettings:
    """A stored row as settings, read back through the same checks it was saved with."""
    values = ConnectionInput(
        id=row.id,
        kind=row.kind,
        base_url=row.base_url,
        options={
            name: value
            for name, value in options.items()
            if name in _kind_options(row.kind) and isinstance(value, str | bool)
        },
    )
    try:
        return _parse(values, api_key, api_secret, defaults)
    except ConfigurationError as exc:
        raise InvalidInputError(f"stored connection {row.id}: {exc}") from None


def _kind_options(kind: str) -> tuple[str, ...]:
    return next((names for known, names in KIND_OPTIONS.items() if known == kind), ())


def _second_secret(upstream: UpstreamSettings) -> str | None:
    return upstream.auth_param if upstream.kind == "apikey-jwt" else upstream.api_secret


def _options(row: VendorConnection | None) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        options = json.loads(row.options or "{}")
    except ValueError:
        return {}
    return options if isinstance(options, dict) else {}


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
