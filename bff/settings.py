"""Typed ``BFF_*`` settings, read from the environment and an optional ``.env`` file.

Every problem is reported as a :class:`~bff.errors.ConfigurationError` naming the
setting, so ``bff serve`` can exit with status 2 and one clear line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bff.errors import ConfigurationError

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
    timeout: float = 10.0
    max_concurrency: int = 8

    @property
    def configured(self) -> bool:
        return self.base_url is not None


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


def _parse(env: Mapping[str, str]) -> Settings:
    reader = _Reader(env)
    upstream = UpstreamSettings(
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
        timeout=reader.number("BFF_UPSTREAM_TIMEOUT", 10.0),
        max_concurrency=int(reader.number("BFF_UPSTREAM_MAX_CONCURRENCY", 8)),
    )
    oidc_issuer = reader.url("BFF_OIDC_ISSUER")
    oidc = None
    if oidc_issuer is not None:
        oidc = OIDCSettings(
            issuer=oidc_issuer,
            client_id=reader.required("BFF_OIDC_CLIENT_ID"),
            client_secret=reader.required("BFF_OIDC_CLIENT_SECRET"),
            allow_signup=reader.flag("BFF_OIDC_ALLOW_SIGNUP"),
        )
    return Settings(
        secret_keys=reader.keys("BFF_SECRET_KEYS"),
        encryption_keys=reader.keys("BFF_ENCRYPTION_KEYS"),
        public_url=reader.url("BFF_PUBLIC_URL") or "http://127.0.0.1:8000",
        database_url=reader.database_url("BFF_DATABASE_URL"),
        redis_url=reader.url("BFF_REDIS_URL", schemes=("redis", "rediss")),
        upstream=upstream,
        dashboard_url=reader.url("BFF_DASHBOARD_URL"),
        dashboard_delivery=reader.choice("BFF_DASHBOARD_DELIVERY", DELIVERY_MODES, "post"),
        session_idle_seconds=int(reader.number("BFF_SESSION_IDLE_SECONDS", 30 * 60)),
        session_max_seconds=int(reader.number("BFF_SESSION_MAX_SECONDS", 12 * 60 * 60)),
        oidc=oidc,
        log_level=reader.choice(
            "BFF_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
        ),
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


class _Reader:
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

    def url(self, name: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigurationError(
                name, f"is not a valid {'/'.join(schemes)} URL: {value[:80]!r}"
            )
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigurationError(name, f"has a malformed port: {value[:80]!r}") from None
        return value.rstrip("/")

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

    def number(self, name: str, default: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(name, f"expected a number, got {value!r}") from None
        if number <= 0:
            raise ConfigurationError(name, "must be positive")
        return number
