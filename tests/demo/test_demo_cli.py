"""``bff demo``: the seed data, the command line, and a real run over sockets."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from bff.cli import main
from bff.demo.run import banner, running_demo
from bff.demo.seed import TENANTS, demo_accounts, seed
from bff.passwords import check_strength, verify_password
from bff.store.database import Database
from bff.store.schema import prepare_schema
from bff.store.users import find_user, user_scopes

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_HEADING = re.compile(r"<h1>(Insights for [^<]+)</h1>")


def test_accounts_are_fresh_strong_and_cover_the_brief() -> None:
    first, second = demo_accounts(), demo_accounts()
    assert [a.password for a in first] != [a.password for a in second]
    for account in first:
        check_strength(account.password, account.email)
    assert sum(account.is_admin for account in first) == 1
    users = [account for account in first if not account.is_admin]
    assert len(users) == 2
    assert max(len(user.scopes) for user in users) > 1
    assert len(TENANTS) == 2 and all(len(subs) == 2 for subs in TENANTS.values())
    for user in users:
        for tenant, sub_tenant in user.scopes:
            assert sub_tenant in TENANTS[tenant]


@pytest.mark.anyio
async def test_seed_creates_users_with_their_mappings(tmp_path: Path) -> None:
    accounts = demo_accounts()
    database = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        await prepare_schema(database)
        await seed(database, accounts)
        async with database.session() as db:
            for account in accounts:
                user = await find_user(db, account.email)
                assert user is not None
                assert user.is_admin == account.is_admin
                assert verify_password(user.password_hash, account.password)
                assert await user_scopes(db, user.id) == sorted(account.scopes)
    finally:
        await database.dispose()


def test_unknown_delivery_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--delivery", "carrier-pigeon"])
    assert exited.value.code == 2
    assert "--delivery" in capsys.readouterr().err


def test_a_real_demo_run_signs_in_and_shows_the_dashboard(tmp_path: Path) -> None:
    stale = tmp_path / "bff.db"
    stale.write_bytes(b"left over from an earlier run")
    with running_demo(port=0, directory=tmp_path) as demo:
        text = banner(demo)
        assert demo.url in text
        analyst = next(a for a in demo.accounts if len(a.scopes) > 1)
        assert analyst.email in text and analyst.password in text
        assert demo.settings.demo and demo.settings.is_local_http

        with httpx2.Client(base_url=demo.url, timeout=10) as browser:
            login = browser.get("/login")
            token = _CSRF.search(login.text)
            assert token
            signed_in = browser.post(
                "/login",
                data={
                    "email": analyst.email,
                    "password": analyst.password,
                    "csrf_token": token.group(1),
                },
            )
            assert signed_in.status_code == 303
            page = browser.get("/")
            assert page.status_code == 200
            assert 'src="/vendor/"' in page.text
            framed = browser.get("/vendor/")
            found = _HEADING.search(framed.text)
            assert found
            tenant, sub_tenant = analyst.scopes[0]
            assert found.group(1) == f"Insights for tenant {tenant} / sub-tenant {sub_tenant}"
