from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bff.cli import main
from bff.crypto import SecretBox
from bff.demo.server import serve_in_thread
from bff.demo.vendor import PAIR_TOKEN_PATH, VendorConfig, create_vendor_app
from bff.store.connections import connection_secrets, save_connection
from bff.store.database import Database
from bff.store.models import VendorConnection
from bff.store.schema import head_revision, prepare_schema
from tests.broker.test_check import spy_on_tokens
from tests.conftest import random_key

PASSWORD = "correct horse battery staple"


@pytest.fixture
def bff_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BFF_SECRET_KEYS", random_key())
    monkeypatch.setenv("BFF_ENCRYPTION_KEYS", random_key())
    return clean_env


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["users", "--help"],
                 ["users", "add", "--help"], ["users", "map", "--help"], ["check", "--help"],
                 ["reencrypt", "--help"], ["api-keys", "--help"],
                 ["api-keys", "create", "--help"]):  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        assert "usage: bff" in capsys.readouterr().out


def test_migrate_creates_the_default_sqlite_file(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "migrate")
    assert code == 0
    head = head_revision()
    assert f"revision {head}" in out
    assert query(bff_env / "var" / "bff.db", "SELECT version_num FROM alembic_version") == [(head,)]


def test_missing_secret_exits_2_with_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BFF_ENCRYPTION_KEYS", random_key())
    for command in (["migrate"], ["serve"], ["users", "add", "a@example.com"]):
        code, _, err = run(monkeypatch, capsys, *command, stdin=PASSWORD)
        assert code == 2
        assert err.count("\n") == 1
        assert "BFF_SECRET_KEYS" in err


def test_placeholder_secret_refused(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BFF_SECRET_KEYS", "changeme")
    code, _, err = run(monkeypatch, capsys, "serve")
    assert (code, err.strip()) == (
        2,
        "bff: configuration error: BFF_SECRET_KEYS: is a well-known placeholder; "
        "generate a random key",
    )


def test_users_add_and_map(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "users", "add", " Ada@Example.com ", "--admin",
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert (code, out.strip()) == (0, "created admin ada@example.com")
    code, out, _ = run(
        monkeypatch, capsys, "users", "map", "ada@example.com", "--tenant", "acme",
        "--sub-tenant", "eu-1",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "mapped: ada@example.com -> (acme, eu-1)")
    code, out, _ = run(monkeypatch, capsys, "users", "map", "ada@example.com",
                       "--tenant", "acme", "--sub-tenant", "eu-1")  # fmt: skip
    assert "already mapped" in out

    db = bff_env / "var" / "bff.db"
    [(email, password_hash, is_admin)] = query(
        db, "SELECT email, password_hash, is_admin FROM users"
    )
    assert (email, is_admin) == ("ada@example.com", 1)
    assert str(password_hash).startswith("$argon2id$")
    assert PASSWORD not in str(password_hash)
    assert query(db, "SELECT tenant_id, sub_tenant_id FROM user_scopes") == [("acme", "eu-1")]
    assert query(db, "SELECT tenant_id, id FROM sub_tenants") == [("acme", "eu-1")]
    # The same operations as the admin API, so the same audit trail.
    assert query(db, "SELECT actor, action, target FROM audit_log ORDER BY id") == [
        ("cli", "user.create", "ada@example.com"),
        ("cli", "mapping.add", "ada@example.com acme/eu-1"),
    ]


@pytest.mark.parametrize(
    ("password", "reason"),
    [("", "empty"), ("short", "at least 12"), ("password1234", "too easy"),
     ("aaaaaaaaaaaaaaaa", "too easy"), ("i-am-ada.lovelace-1815", "e-mail")],
)  # fmt: skip
def test_users_add_refuses_weak_passwords(
    bff_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    password: str,
    reason: str,
) -> None:
    code, _, err = run(monkeypatch, capsys, "users", "add", "ada.lovelace@example.com",
                       stdin=password + "\n")  # fmt: skip
    assert code == 1
    assert reason in err
    assert "Traceback" not in err
    db = bff_env / "var" / "bff.db"
    assert not db.exists() or query(db, "SELECT count(*) FROM users") == [(0,)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "add", "not-an-email"], "not a valid e-mail"),
        (["users", "map", "nobody@example.com", "--tenant", "t", "--sub-tenant", "s"], "no user"),
    ],
)
def test_users_errors_are_one_clear_line(
    bff_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code, _, err = run(monkeypatch, capsys, *argv, stdin=PASSWORD)
    assert code == 1
    assert message in err
    assert err.count("\n") == 1


def test_duplicate_user_and_bad_tenant_id(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, capsys, "users", "add", "a@example.com", stdin=PASSWORD)[0] == 0
    code, _, err = run(monkeypatch, capsys, "users", "add", "A@example.com", stdin=PASSWORD)
    assert (code, "already exists" in err) == (1, True)
    code, _, err = run(monkeypatch, capsys, "users", "map", "a@example.com",
                       "--tenant", "acme", "--sub-tenant", "eu 1; drop")  # fmt: skip
    assert code == 1
    assert "may contain only" in err
    assert query(bff_env / "var" / "bff.db", "SELECT count(*) FROM user_scopes") == [(0,)]


def test_reencrypt_rotates_to_the_newest_key(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old_key, new_key = random_key(), random_key()
    url = f"sqlite:///{bff_env / 'var' / 'bff.db'}"

    async def store() -> None:
        database = Database(url)
        await prepare_schema(database)
        async with database.session() as session:
            await save_connection(session, SecretBox([old_key]), "default",
                                  kind="header-exchange", base_url="https://v.example",
                                  api_key="k-123456", api_secret="s-123456")  # fmt: skip
        await database.dispose()

    async def secrets_with(key: str) -> tuple[str | None, str | None]:
        database = Database(url)
        async with database.session() as session:
            row = await session.get(VendorConnection, "default")
            assert row is not None
            result = connection_secrets(SecretBox([key]), row)
        await database.dispose()
        return result

    asyncio.run(store())
    monkeypatch.setenv("BFF_ENCRYPTION_KEYS", f"{new_key},{old_key}")
    code, out, _ = run(monkeypatch, capsys, "reencrypt")
    assert (code, out.strip()) == (0, "re-encrypted 2 secrets with the newest key")
    assert asyncio.run(secrets_with(new_key)) == ("k-123456", "s-123456")

    monkeypatch.setenv("BFF_ENCRYPTION_KEYS", random_key())
    code, _, err = run(monkeypatch, capsys, "reencrypt")
    assert code == 1
    assert "BFF_ENCRYPTION_KEYS" in err


@pytest.mark.parametrize(
    "upstream",
    [
        {"BFF_UPSTREAM_KIND": "header-exchange"},
        {"BFF_UPSTREAM_KIND": "apikey-jwt", "BFF_UPSTREAM_PAIR_TOKEN_URL": PAIR_TOKEN_PATH},
        {
            "BFF_UPSTREAM_KIND": "static-bearer",
            "BFF_UPSTREAM_AUTH_SCHEME": "basic",
            "BFF_UPSTREAM_API_USERNAME": "demo-partner",
            "BFF_UPSTREAM_PAIR_TOKEN_URL": PAIR_TOKEN_PATH,
            "BFF_UPSTREAM_PAIR_TOKEN_STYLE": "json",
        },
        {"BFF_UPSTREAM_KIND": "oauth2-client-credentials", "BFF_DASHBOARD_DELIVERY": "proxy"},
    ],
)
def test_check_against_a_real_vendor_prints_nothing_secret(
    bff_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    upstream: dict[str, str],
) -> None:
    vendor = VendorConfig(api_key=f"key-{random_key()}", api_secret=f"secret-{random_key()}")
    issued = spy_on_tokens(vendor)
    with serve_in_thread(create_vendor_app(vendor)) as base_url:
        for name, value in {
            "BFF_UPSTREAM_BASE_URL": base_url,
            "BFF_UPSTREAM_API_KEY": vendor.api_key,
            "BFF_UPSTREAM_API_SECRET": vendor.api_secret,
            **upstream,
        }.items():
            monkeypatch.setenv(name, value)
        code, out, err = run(
            monkeypatch, capsys, "check", "--tenant", "acme", "--sub-tenant", "emea"
        )
    assert code == 0, out + err
    assert "vendor: ok" in out
    basic = base64.b64encode(f"{vendor.api_username}:{vendor.api_key}".encode()).decode()
    assert issued
    for secret in [*issued, vendor.api_key, vendor.api_secret, basic]:
        assert secret not in out + err


def test_check_refuses_a_connection_wide_kind_outside_the_proxy_without_the_pair_step(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BFF_UPSTREAM_KIND", "static-bearer")
    monkeypatch.setenv("BFF_UPSTREAM_BASE_URL", "https://vendor.example")
    monkeypatch.setenv("BFF_UPSTREAM_API_KEY", "static-key-that-must-not-leak")
    monkeypatch.setenv("BFF_DASHBOARD_DELIVERY", "fragment")
    code, out, err = run(monkeypatch, capsys, "check", "--tenant", "acme", "--sub-tenant", "emea")
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert "BFF_DASHBOARD_DELIVERY" in line and "BFF_UPSTREAM_PAIR_TOKEN_URL" in line
    assert "static-key-that-must-not-leak" not in err


def _bff_process(env_dir: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    """``bff`` as a separate process, in ``env_dir`` with the test's BFF_* environment."""
    return subprocess.run(
        [sys.executable, "-m", "bff", *argv],
        cwd=env_dir,
        input=stdin.encode(),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        check=False,
        timeout=60,
    )


def test_api_keys_create_prints_the_token_alone_on_stdout(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, capsys, "users", "add", "ada@example.com", stdin=PASSWORD)[0] == 0
    created = _bff_process(bff_env, "api-keys", "create", " Ada@Example.com", "--handle", "ci",
                           "--alias", "CI runner")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(rb"bffk_[A-Za-z0-9_-]{43}\n", created.stdout)
    assert b"created API key ci for ada@example.com" in created.stderr
    token = created.stdout.decode().strip()
    db = bff_env / "var" / "bff.db"
    [(handle, alias, key_hash)] = query(db, "SELECT handle, alias, key_hash FROM api_keys")
    assert (handle, alias) == ("ci", "CI runner")
    assert key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in b"".join(p.read_bytes() for p in db.parent.iterdir())


def test_a_shell_captures_exactly_the_token(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, capsys, "users", "add", "ada@example.com", stdin=PASSWORD)[0] == 0
    script = (
        f'TOKEN=$("{sys.executable}" -m bff api-keys create ada@example.com --handle ci) '
        '&& printf "[%s]" "$TOKEN"'
    )
    shell = subprocess.run(
        ["sh", "-c", script],
        cwd=bff_env,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        check=False,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert re.fullmatch(rb"\[bffk_[A-Za-z0-9_-]{43}\]", shell.stdout)


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (False, ["nobody@example.com", "--handle", "ci"], "no user nobody@example.com"),
        (True, ["ada@example.com", "--handle=-ci"], "handle '-ci' may contain only"),
        (True, ["ada@example.com", "--handle", "main"], "already exists"),
    ],
)
def test_api_keys_create_errors_print_nothing_on_stdout(
    bff_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setup: bool,
    argv: list[str],
    message: str,
) -> None:
    if setup:
        assert run(monkeypatch, capsys, "users", "add", "ada@example.com", stdin=PASSWORD)[0] == 0
        assert run(monkeypatch, capsys, "api-keys", "create", "ada@example.com",
                   "--handle", "main")[0] == 0  # fmt: skip
    code, out, err = run(monkeypatch, capsys, "api-keys", "create", *argv)
    assert (code, out) == (1, "")
    assert message in err
    assert err.count("\n") == 1


def test_serve_with_several_workers_needs_redis(
    bff_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(monkeypatch, capsys, "serve", "--workers", "2")
    assert code == 2
    assert err.count("\n") == 1
    assert "BFF_REDIS_URL" in err
    assert "--workers 2" in err
    assert not (bff_env / "var").exists()  # refused before touching anything

    code, _, err = run(monkeypatch, capsys, "serve", "--workers", "0")
    assert code == 2
    assert err.count("\n") == 1
    assert "--workers" in err
