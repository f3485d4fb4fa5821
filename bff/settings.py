"""Typed ``BFF_*`` settings, read from the environment and an optional ``.env`` file.

Every problem is reported as a :class:`~bff.errors.ConfigurationError` naming the
setting, so ``bff serve`` can exit with status 2 and one clear line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bff.errors import ConfigurationError, InvalidInputError
from bff.origins import clean_origin

ConnectorKind = Literal[
    "header-exchange", "apikey-jwt", "oauth2-client-credentials", "static-bearer"
]
DeliveryMode = Literal["proxy", "post", "fragment", "query"]

CONNECTOR_KINDS: tuple[ConnectorKind, ...] = (
    "header-exchange",
    "apikey-jwt",
    "oauth2-client-credentials",
    "static-bearer",
)
DELIVERY_MODES: tuple[DeliveryMode, ...] = ("proxy", "post", "fragment", "query")
# Kinds whose token serves the whole connection, not one (tenant, sub-tenant).
CONNECTION_WIDE_KINDS: frozenset[ConnectorKind] = frozenset(
    {"apikey-jwt", "oauth2-client-credentials", "static-bearer"}
)
PairTokenStyle = Literal["headers", "json"]
AuthScheme = Literal["bearer", "basic"]

# The documented range of every numeric setting (README): a value outside it is a
# typo or a misunderstanding, never something to clamp silently.
TIMEOUT_RANGE = (0.5, 300.0)
MAX_CONCURRENCY_RANGE = (1, 1000)
SESSION_IDLE_RANGE = (60, 7 * 24 * 60 * 60)
SESSION_MAX_RANGE = (300, 90 * 24 * 60 * 60)
DATABASE_POOL_RANGE = (1, 500)
DATABASE_OVERFLOW_RANGE = (0, 500)

MIN_KEY_LENGTH = 32
# Values that appear in tutorials and sample configs; a key like this is public.
_WELL_KNOWN_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "secretkey",
        "password",
        "default",
        "development",
        "dev",
        "test",
        "example",
        "insecure",
        "your-secret-key",
        "replace-me",
        "xxx",
    }
)
_Choice = TypeVar("_Choice", bound=str)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclasses.dataclass(frozen=True)
class UpstreamSettings:
    """The default vendor connection (more can be stored in the database)."""

    kind: ConnectorKind = "header-exchange"
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    api_secret: str | None = dataclasses.field(default=None, repr=False)
    # apikey-jwt: authentication endpoint; oauth2: token endpoint (URL or path under base_url).
    auth_url: str | None = None
    # apikey-jwt: the optional extra authentication parameter.
    auth_param: str | None = None
    # apikey-jwt: the endpoint needs a fresh token for every call.
    single_use: bool = False
    # oauth2: send client credentials with HTTP Basic instead of the form body.
    basic_auth: bool = False
    # oauth2: optional ``Realm`` header.
    realm: str | None = None
    # static-bearer: the "who am I" endpoint used to validate the key.
    whoami_url: str | None = None
    # static-bearer: present the key as ``Bearer`` or as HTTP Basic ``username:key``.
    auth_scheme: AuthScheme = "bearer"
    api_username: str | None = None
    # Connection-wide kinds: the vendor endpoint that turns the connection's token into a
    # dashboard token for one pair (URL or path under base_url), and how the pair is sent.
    pair_token_url: str | None = None
    pair_token_style: PairTokenStyle = "headers"
    timeout: float = 10.0
    max_concurrency: int = 8

    @property
    def configured(self) -> bool:
        return self.base_url is not None

    @property
    def pair_scoped(self) -> bool:
        """True when every token this connection hands out is for one pair only."""
        return self.kind not in CONNECTION_WIDE_KINDS or self.pair_token_url is not None


@dataclasses.dataclass(frozen=True)
class OIDCSettings:
    issuer: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    allow_signup: bool = False


@dataclasses.dataclass(frozen=True)
class Settings:
    secret_keys: tuple[str, ...] = dataclasses.field(repr=False)
    encryption_keys: tuple[str, ...] = dataclasses.field(repr=False)
    public_url: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///./var/bff.db"
    redis_url: str | None = None
    # PostgreSQL connections each process keeps open, and may open beyond that at peaks.
    database_pool_size: int = 5
    database_max_overflow: int = 10
    # The separate origin (scheme://host[:port]) that alone serves the vendor proxy.
    proxy_origin: str | None = None
    upstream: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    dashboard_url: str | None = None
    dashboard_delivery: DeliveryMode = "post"
    session_idle_seconds: int = 30 * 60
    session_max_seconds: int = 12 * 60 * 60
    oidc: OIDCSettings | None = None
    log_level: str = "INFO"
    # Only `bff demo` turns this on: it allows generated keys and says so loudly.
    demo: bool = False

    @property
    def is_local_http(self) -> bool:
        """True only for plain-http development on this machine (cookies may drop ``Secure``)."""
        parts = urlsplit(self.public_url)
        return parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS

    @property
    def is_https(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
    ) -> Settings:
        """Read settings from ``env_file`` overridden by ``environ`` (default ``os.environ``)."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return _parse(values)


def read_upstream(env: Mapping[str, str]) -> UpstreamSettings:
    """A vendor connection from ``BFF_UPSTREAM_*`` values: the settings' default one, and
    those the admin console stores (it maps its form onto the same names and checks)."""
    reader = EnvReader(env)
    return UpstreamSettings(
        kind=reader.choice("BFF_UPSTREAM_KIND", CONNECTOR_KINDS, "header-exchange"),
        base_url=reader.url("BFF_UPSTREAM_BASE_URL"),
        api_key=reader.text("BFF_UPSTREAM_API_KEY"),
        api_secret=reader.text("BFF_UPSTREAM_API_SECRET"),
        auth_url=reader.text("BFF_UPSTREAM_AUTH_URL"),
        auth_param=reader.text("BFF_UPSTREAM_AUTH_PARAM"),
        single_use=reader.flag("BFF_UPSTREAM_SINGLE_USE"),
        basic_auth=reader.flag("BFF_UPSTREAM_BASIC_AUTH"),
        realm=reader.text("BFF_UPSTREAM_REALM"),
        whoami_url=reader.text("BFF_UPSTREAM_WHOAMI_URL"),
        auth_scheme=reader.choice("BFF_UPSTREAM_AUTH_SCHEME", ("bearer", "basic"), "bearer"),
        api_username=reader.text("BFF_UPSTREAM_API_USERNAME"),
        pair_token_url=reader.text("BFF_UPSTREAM_PAIR_TOKEN_URL"),
        pair_token_style=reader.choice(
            "BFF_UPSTREAM_PAIR_TOKEN_STYLE", ("headers", "json"), "headers"
        ),
        timeout=reader.number("BFF_UPSTREAM_TIMEOUT", 10.0, TIMEOUT_RANGE),
        max_concurrency=reader.integer("BFF_UPSTREAM_MAX_CONCURRENCY", 8, MAX_CONCURRENCY_RANGE),
    )


def _parse(env: Mapping[str, str]) -> Settings:
    reader = EnvReader(env)
    upstream = read_upstream(env)
    oidc_issuer = reader.url("BFF_OIDC_ISSUER")
    oidc = None
    if oidc_issuer is not None:
        oidc = OIDCSettings(
            issuer=oidc_issuer,
            client_id=reader.required("BFF_OIDC_CLIENT_ID"),
            client_secret=reader.required("BFF_OIDC_CLIENT_SECRET"),
            allow_signup=reader.flag("BFF_OIDC_ALLOW_SIGNUP"),
        )
    settings = Settings(
        secret_keys=reader.keys("BFF_SECRET_KEYS"),
        encryption_keys=reader.keys("BFF_ENCRYPTION_KEYS"),
        public_url=reader.url("BFF_PUBLIC_URL") or "http://127.0.0.1:8000",
        database_url=reader.database_url("BFF_DATABASE_URL"),
        redis_url=reader.url("BFF_REDIS_URL", schemes=("redis", "rediss")),
        database_pool_size=reader.integer("BFF_DATABASE_POOL_SIZE", 5, DATABASE_POOL_RANGE),
        database_max_overflow=reader.integer(
            "BFF_DATABASE_MAX_OVERFLOW", 10, DATABASE_OVERFLOW_RANGE
        ),
        proxy_origin=reader.origin("BFF_PROXY_ORIGIN"),
        upstream=upstream,
        # Kept exactly as given: its trailing slash decides the directory the proxy serves.
        dashboard_url=reader.url("BFF_DASHBOARD_URL", keep_trailing_slash=True),
        dashboard_delivery=reader.choice("BFF_DASHBOARD_DELIVERY", DELIVERY_MODES, "post"),
        session_idle_seconds=reader.integer(
            "BFF_SESSION_IDLE_SECONDS", 30 * 60, SESSION_IDLE_RANGE
        ),
        session_max_seconds=reader.integer(
            "BFF_SESSION_MAX_SECONDS", 12 * 60 * 60, SESSION_MAX_RANGE
        ),
        oidc=oidc,
        log_level=reader.choice(
            "BFF_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
        ),
    )
    check_connection_wide_delivery(settings.upstream, settings.dashboard_delivery)
    if settings.proxy_origin is not None and settings.proxy_origin == _origin_of(
        settings.public_url
    ):
        raise ConfigurationError(
            "BFF_PROXY_ORIGIN", "must be another origin than BFF_PUBLIC_URL's (a second host name)"
        )
    return settings


def _origin_of(url: str) -> str | None:
    try:
        return clean_origin(urlsplit(url)._replace(path="", query="", fragment="").geturl())
    except InvalidInputError:
        return None


def check_connection_wide_delivery(upstream: UpstreamSettings, delivery: DeliveryMode) -> None:
    """A token that is not scoped to one pair must never reach a browser: such a
    connection works only through the proxy, which pins the pair server-side."""
    if upstream.pair_token_url is not None and upstream.kind not in CONNECTION_WIDE_KINDS:
        raise ConfigurationError(
            "BFF_UPSTREAM_PAIR_TOKEN_URL",
            f"is only for connection-wide kinds; {upstream.kind} tokens are already per pair",
        )
    if upstream.auth_scheme == "basic":
        if upstream.kind != "static-bearer":
            raise ConfigurationError(
                "BFF_UPSTREAM_AUTH_SCHEME", "basic is only for BFF_UPSTREAM_KIND=static-bearer"
            )
        if upstream.api_username is None:
            raise ConfigurationError(
                "BFF_UPSTREAM_API_USERNAME", "is required with BFF_UPSTREAM_AUTH_SCHEME=basic"
            )
        if delivery != "proxy" and upstream.pair_token_url is None:
            raise ConfigurationError(
                "BFF_DASHBOARD_DELIVERY",
                "HTTP Basic credentials can only be used by the proxy; "
                "set BFF_DASHBOARD_DELIVERY=proxy, or BFF_UPSTREAM_PAIR_TOKEN_URL so each "
                "pair gets its own dashboard token",
            )
    if upstream.configured and not upstream.pair_scoped and delivery != "proxy":
        raise ConfigurationError(
            "BFF_DASHBOARD_DELIVERY",
            f"{delivery} would put the connection-wide {upstream.kind} token in every "
            "user's page; use proxy, or set BFF_UPSTREAM_PAIR_TOKEN_URL so each pair gets "
            "its own dashboard token",
        )


def check_secret_key(setting: str, key: str) -> None:
    """Reject empty, short or well-known keys."""
    if not key:
        raise ConfigurationError(setting, "contains an empty key")
    if key.lower() in _WELL_KNOWN_SECRETS or len(set(key)) < 8:
        raise ConfigurationError(setting, "is a well-known placeholder; generate a random key")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(
            setting, f"keys must be at least {MIN_KEY_LENGTH} characters (got {len(key)})"
        )


class EnvReader:
    """Reads and checks ``BFF_*`` values; a bad one is a :class:`ConfigurationError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigurationError(name, "is required")
        return value

    def keys(self, name: str) -> tuple[str, ...]:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            raise ConfigurationError(name, "is required (comma-separated keys, newest first)")
        keys = tuple(key.strip() for key in raw.split(","))
        for key in keys:
            check_secret_key(name, key)
        return keys

    def url(
        self,
        name: str,
        schemes: tuple[str, ...] = ("http", "https"),
        *,
        keep_trailing_slash: bool = False,
    ) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = urlsplit("")
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigurationError(
                name, f"is not a valid {'/'.join(schemes)} URL: {value[:80]!r}"
            )
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigurationError(name, f"has a malformed port: {value[:80]!r}") from None
        return value if keep_trailing_slash else value.rstrip("/")

    def origin(self, name: str) -> str | None:
        """An exact origin (``scheme://host[:port]``, no path), as browsers compare them."""
        value = self.url(name)
        if value is None:
            return None
        try:
            return clean_origin(value, name)
        except InvalidInputError as error:
            raise ConfigurationError(name, str(error).removeprefix(f"{name}: ")) from None

    def database_url(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            return "sqlite:///./var/bff.db"
        scheme = urlsplit(value).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ConfigurationError(name, "must be a sqlite:/// or postgresql:// URL")
        if scheme != "sqlite" and not urlsplit(value).hostname and "host=" not in value:
            raise ConfigurationError(name, f"has no host: {value[:80]!r}")
        return value

    def choice(
        self, name: str, allowed: tuple[_Choice, ...], default: _Choice, *, upper: bool = False
    ) -> _Choice:
        value = self.text(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        for option in allowed:
            if option == value:
                return option
        raise ConfigurationError(
            name, f"unknown value {value!r}; expected one of {', '.join(allowed)}"
        )

    def flag(self, name: str) -> bool:
        value = (self.text(name) or "false").lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(name, f"expected true or false, got {value!r}")

    def number(self, name: str, default: float, bounds: tuple[float, float]) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(name, f"expected a number, got {value[:40]!r}") from None
        low, high = bounds
        if not math.isfinite(number) or not low <= number <= high:
            raise ConfigurationError(name, f"must be a number from {low:g} to {high:g}")
        return number

    def integer(self, name: str, default: int, bounds: tuple[int, int]) -> int:
        value = self.text(name)
        if value is None:
            return default
        low, high = bounds
        # ASCII digits only: int() also takes "١٢" and "1_000", which no one means here.
        digits = value.removeprefix("+")
        if not (digits.isascii() and digits.isdigit()):
            raise ConfigurationError(
                name, f"expected a whole number from {low} to {high}, got {value[:40]!r}"
            )
        number = int(digits)
        if not low <= number <= high:
            raise ConfigurationError(name, f"must be a whole number from {low} to {high}")
        return number
