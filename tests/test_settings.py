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
@pytest.mark.parametrize("value", ["not a url", "ftp://example.com", "http://", "http://h:99999"])
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
