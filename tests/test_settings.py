from __future__ import annotations

from pathlib import Path

import pytest

from bff.errors import ConfigurationError
from bff.settings import Settings
from tests.conftest import random_key


def env(**overrides: str) -> dict[str, str]:
    values = {"BFF_SECRET_KEYS": random_key(), "BFF_ENCRYPTION_KEYS": random_key()}
    values.update(overrides)
    return values


def failure(**overrides: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env(**overrides), env_file=None)
    return caught.value


def test_defaults() -> None:
    settings = Settings.from_env(env(), env_file=None)
    assert settings.database_url == "sqlite:///./var/bff.db"
    assert settings.upstream.kind == "header-exchange"
    assert settings.redis_url is None
    assert settings.is_local_http


@pytest.mark.parametrize("name", ["BFF_SECRET_KEYS", "BFF_ENCRYPTION_KEYS"])
def test_missing_keys(name: str) -> None:
    values = env()
    del values[name]
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(values, env_file=None)
    assert caught.value.setting == name
    assert "required" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "required"),
        ("changeme", "well-known"),
        ("secret", "well-known"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "well-known"),
        ("short-but-random-9x", "at least 32"),
        (f"{random_key()},", "empty key"),
        (f"{random_key()},changeme", "well-known"),
    ],
)
@pytest.mark.parametrize("name", ["BFF_SECRET_KEYS", "BFF_ENCRYPTION_KEYS"])
def test_weak_keys(name: str, value: str, problem: str) -> None:
    error = failure(**{name: value})
    assert error.setting == name
    assert problem in str(error)


def test_key_rotation_list_keeps_order() -> None:
    newest, older = random_key(), random_key()
    settings = Settings.from_env(env(BFF_SECRET_KEYS=f"{newest}, {older}"), env_file=None)
    assert settings.secret_keys == (newest, older)


@pytest.mark.parametrize(
    "name", ["BFF_PUBLIC_URL", "BFF_UPSTREAM_BASE_URL", "BFF_DASHBOARD_URL", "BFF_REDIS_URL"]
)
@pytest.mark.parametrize(
    "value", ["not a url", "ftp://example.com", "http://", "http://h:99999", "https://[::1"]
)
def test_malformed_urls(name: str, value: str) -> None:
    assert failure(**{name: value}).setting == name


def test_malformed_database_url() -> None:
    assert failure(BFF_DATABASE_URL="mysql://x/y").setting == "BFF_DATABASE_URL"


def test_unknown_connector_kind() -> None:
    error = failure(BFF_UPSTREAM_KIND="carrier-pigeon")
    assert error.setting == "BFF_UPSTREAM_KIND"
    assert "header-exchange" in str(error)


def test_unknown_delivery_mode() -> None:
    error = failure(BFF_DASHBOARD_DELIVERY="telepathy")
    assert error.setting == "BFF_DASHBOARD_DELIVERY"
    assert "proxy" in str(error)


def test_accepted_values_are_case_insensitive() -> None:
    settings = Settings.from_env(
        env(BFF_UPSTREAM_KIND="OAuth2-Client-Credentials", BFF_DASHBOARD_DELIVERY="Proxy"),
        env_file=None,
    )
    assert settings.upstream.kind == "oauth2-client-credentials"
    assert settings.dashboard_delivery == "proxy"


def test_oidc_needs_client_credentials() -> None:
    assert failure(BFF_OIDC_ISSUER="https://id.example.com").setting == "BFF_OIDC_CLIENT_ID"


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"BFF_SECRET_KEYS={random_key()}\nBFF_ENCRYPTION_KEYS={random_key()}\n"
        "BFF_PUBLIC_URL=https://from-file.example\nBFF_DASHBOARD_DELIVERY=fragment\n"
    )
    settings = Settings.from_env({"BFF_DASHBOARD_DELIVERY": "query"}, env_file=dotenv)
    assert settings.public_url == "https://from-file.example"
    assert settings.dashboard_delivery == "query"
    assert settings.is_https and not settings.is_local_http


def test_public_url_decides_local_http() -> None:
    for url, local in [
        ("http://localhost:8000", True),
        ("http://127.0.0.1", True),
        ("http://bff.internal", False),
        ("https://localhost", False),
    ]:
        assert Settings.from_env(env(BFF_PUBLIC_URL=url), env_file=None).is_local_http is local


def test_repr_hides_secrets() -> None:
    values = env(BFF_UPSTREAM_API_SECRET="vendor-secret-value-123")
    settings = Settings.from_env(values, env_file=None)
    text = repr(settings)
    assert values["BFF_SECRET_KEYS"] not in text
    assert values["BFF_ENCRYPTION_KEYS"] not in text
    assert "vendor-secret-value-123" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # A fraction used to become a semaphore of 0: every cold request hung forever.
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "0.5"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "0"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "1e3"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "1001"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "-3"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "8_0"),
        ("BFF_UPSTREAM_MAX_CONCURRENCY", "\u0668"),  # an Arabic-Indic eight
        # A fraction of a second used to expire every session at once.
        ("BFF_SESSION_IDLE_SECONDS", "0.9"),
        ("BFF_SESSION_IDLE_SECONDS", "59"),
        ("BFF_SESSION_IDLE_SECONDS", "nan"),
        ("BFF_SESSION_MAX_SECONDS", "inf"),
        ("BFF_SESSION_MAX_SECONDS", "1e30"),
        ("BFF_SESSION_MAX_SECONDS", "1800.0"),
        ("BFF_UPSTREAM_TIMEOUT", "nan"),
        ("BFF_UPSTREAM_TIMEOUT", "inf"),
        ("BFF_UPSTREAM_TIMEOUT", "-inf"),
        ("BFF_UPSTREAM_TIMEOUT", "1e30"),
        ("BFF_UPSTREAM_TIMEOUT", "0"),
        ("BFF_UPSTREAM_TIMEOUT", "0.1"),
        ("BFF_UPSTREAM_TIMEOUT", "ten"),
    ],
)
def test_numbers_that_would_break_the_server_are_refused(name: str, value: str) -> None:
    error = failure(**{name: value})
    assert error.setting == name
    assert "from" in error.problem or "expected" in error.problem
    assert "\n" not in str(error)


def test_numbers_within_their_ranges_are_taken() -> None:
    settings = Settings.from_env(
        env(
            BFF_UPSTREAM_MAX_CONCURRENCY="1000",
            BFF_SESSION_IDLE_SECONDS="60",
            BFF_SESSION_MAX_SECONDS=" 86400 ",
            BFF_UPSTREAM_TIMEOUT="2.5",
        ),
        env_file=None,
    )
    assert settings.upstream.max_concurrency == 1000
    assert settings.session_idle_seconds == 60
    assert settings.session_max_seconds == 86400
    assert settings.upstream.timeout == 2.5


def test_dashboard_url_keeps_its_trailing_slash() -> None:
    # "/embed/" is a directory the proxy serves below; "/embed" would widen it to "/".
    settings = Settings.from_env(
        env(BFF_DASHBOARD_URL="https://vendor.example/embed/"), env_file=None
    )
    assert settings.dashboard_url == "https://vendor.example/embed/"


def vendor_env(kind: str, delivery: str, **extra: str) -> dict[str, str]:
    return env(
        BFF_UPSTREAM_KIND=kind,
        BFF_UPSTREAM_BASE_URL="https://vendor.example",
        BFF_UPSTREAM_API_KEY="vendor-key-123456",
        BFF_UPSTREAM_API_SECRET="vendor-secret-123456",
        BFF_DASHBOARD_DELIVERY=delivery,
        **extra,
    )


@pytest.mark.parametrize("kind", ["apikey-jwt", "oauth2-client-credentials", "static-bearer"])
@pytest.mark.parametrize("delivery", ["post", "fragment", "query"])
def test_connection_wide_token_is_refused_outside_the_proxy(kind: str, delivery: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(vendor_env(kind, delivery), env_file=None)
    assert caught.value.setting == "BFF_DASHBOARD_DELIVERY"
    assert "BFF_UPSTREAM_PAIR_TOKEN_URL" in caught.value.problem
    assert kind in caught.value.problem


@pytest.mark.parametrize("kind", ["apikey-jwt", "oauth2-client-credentials", "static-bearer"])
def test_connection_wide_token_is_allowed_behind_the_proxy_or_a_pair_step(kind: str) -> None:
    proxied = Settings.from_env(vendor_env(kind, "proxy"), env_file=None)
    assert not proxied.upstream.pair_scoped
    stepped = Settings.from_env(
        vendor_env(kind, "post", BFF_UPSTREAM_PAIR_TOKEN_URL="/api/v1/partner/dashboard/token"),
        env_file=None,
    )
    assert stepped.upstream.pair_scoped
    assert stepped.upstream.pair_token_style == "headers"


def test_header_exchange_is_pair_scoped_in_every_mode() -> None:
    for delivery in ("proxy", "post", "fragment", "query"):
        settings = Settings.from_env(vendor_env("header-exchange", delivery), env_file=None)
        assert settings.upstream.pair_scoped


@pytest.mark.parametrize("delivery", ["proxy", "post"])
def test_a_per_pair_step_for_a_per_pair_kind_is_refused_at_start_up(delivery: str) -> None:
    # Not at the first request: the connector would refuse it in the lifespan, too late
    # for one line and exit 2.
    step = {"BFF_UPSTREAM_PAIR_TOKEN_URL": "/api/v1/partner/dashboard/token"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(vendor_env("header-exchange", delivery, **step), env_file=None)
    assert caught.value.setting == "BFF_UPSTREAM_PAIR_TOKEN_URL"
    assert caught.value.problem == (
        "is only for connection-wide kinds; header-exchange tokens are already per pair"
    )


def test_basic_scheme_is_for_the_static_key_behind_the_proxy() -> None:
    basic = {"BFF_UPSTREAM_AUTH_SCHEME": "basic", "BFF_UPSTREAM_API_USERNAME": "reseller"}
    settings = Settings.from_env(vendor_env("static-bearer", "proxy", **basic), env_file=None)
    assert settings.upstream.auth_scheme == "basic"
    assert settings.upstream.api_username == "reseller"
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(vendor_env("apikey-jwt", "proxy", **basic), env_file=None)
    assert caught.value.setting == "BFF_UPSTREAM_AUTH_SCHEME"
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            vendor_env("static-bearer", "proxy", BFF_UPSTREAM_AUTH_SCHEME="basic"), env_file=None
        )
    assert caught.value.setting == "BFF_UPSTREAM_API_USERNAME"
