"""``bff demo``: the seed data, the command line, and a real run over sockets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from bff.cli import main
from bff.demo import tokens
from bff.demo.run import Demo, DemoConnection, banner, running_demo
from bff.demo.seed import TENANTS, DemoAccount, demo_accounts, seed
from bff.errors import ConfigurationError
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

        assert demo.proxy_url == demo.url.replace("127.0.0.1", "localhost")
        assert f"Vendor proxy:   {demo.proxy_url}" in text

        with signed_in(demo, analyst) as browser:
            page = browser.get("/")
            assert page.status_code == 200
            assert 'src="/vendor-frame"' in page.text
            assert browser.get("/vendor/").status_code == 404
            framed = proxied(demo, browser)
            found = _HEADING.search(framed.text)
            assert found
            tenant, sub_tenant = analyst.scopes[0]
            assert found.group(1) == f"Insights for tenant {tenant} / sub-tenant {sub_tenant}"


@contextmanager
def signed_in(demo: Demo, account: DemoAccount) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=demo.url, timeout=10) as browser:
        login = browser.get("/login")
        token = _CSRF.search(login.text)
        assert token
        answer = browser.post(
            "/login",
            data={
                "email": account.email,
                "password": account.password,
                "csrf_token": token.group(1),
            },
        )
        assert answer.status_code == 303
        yield browser


def proxied(
    demo: Demo, browser: httpx2.Client, headers: dict[str, str] | None = None
) -> httpx2.Response:
    """The dashboard frame's way: the handoff on bff's origin, redeemed on the proxy
    origin, then ``/vendor/`` there with the proxy session cookie."""
    assert demo.proxy_url is not None
    started = browser.get("/vendor-frame", headers={"Sec-Fetch-Site": "same-origin"})
    assert started.status_code == 303
    redeemed = httpx2.get(started.headers["location"], timeout=10)
    assert redeemed.status_code == 303
    # Sent by hand: a cookie jar keeps Secure cookies from plain http, even on localhost.
    cookie = redeemed.headers["set-cookie"].split(";")[0]
    return httpx2.get(
        f"{demo.proxy_url}/vendor/", headers={"cookie": cookie, **(headers or {})}, timeout=10
    )


_POSTED_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@pytest.mark.parametrize(
    "connection",
    [
        DemoConnection("apikey-jwt", pair_token_style="json"),
        DemoConnection("static-bearer", "basic", pair_token_style="headers"),
    ],
    ids=lambda connection: connection.describe(),
)
def test_a_connection_wide_kind_with_the_per_pair_step_posts_only_a_pair_token(
    tmp_path: Path, connection: DemoConnection
) -> None:
    with running_demo(port=0, directory=tmp_path, delivery="post", connection=connection) as demo:
        assert connection.describe() in banner(demo)
        analyst = next(a for a in demo.accounts if len(a.scopes) > 1)
        with signed_in(demo, analyst) as browser:
            page = browser.get("/")
            assert page.status_code == 200
            found = _POSTED_TOKEN.search(page.text)
            assert found
            token = found.group(1)
        vendor = demo.vendor
        assert vendor.calls["pair_token"] == 1  # the connection's credential was used...
        assert not vendor.is_credential(token)  # ...but never posted
        assert vendor.api_key not in page.text
        claims = tokens.verify(token, vendor.signing_key, vendor.clock.now().timestamp())
        assert claims is not None
        assert claims["jti"] not in vendor.credentials
        assert (claims["tenant_id"], claims["sub_tenant_id"]) == analyst.scopes[0]
        shown = httpx2.post(f"{demo.vendor_url}/dashboard/", data={"token": token})
        found_heading = _HEADING.search(shown.text)
        assert found_heading
        tenant, sub_tenant = analyst.scopes[0]
        assert found_heading.group(1) == f"Insights for tenant {tenant} / sub-tenant {sub_tenant}"


def test_a_demo_refuses_a_connection_wide_token_outside_the_proxy(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigurationError, match="BFF_UPSTREAM_PAIR_TOKEN_URL"),
        running_demo(
            port=0, directory=tmp_path, delivery="fragment", connection=DemoConnection("apikey-jwt")
        ),
    ):
        pass


@pytest.mark.parametrize(
    "connection",
    [DemoConnection("apikey-jwt"), DemoConnection("static-bearer", "basic")],
    ids=lambda connection: connection.describe(),
)
def test_a_connection_wide_kind_in_the_proxy_shows_only_the_pinned_pair(
    tmp_path: Path, connection: DemoConnection
) -> None:
    with running_demo(port=0, directory=tmp_path, delivery="proxy", connection=connection) as demo:
        analyst = next(a for a in demo.accounts if len(a.scopes) > 1)
        tenant, sub_tenant = analyst.scopes[0]
        other = next(pair for pair in analyst.scopes if pair != (tenant, sub_tenant))
        with signed_in(demo, analyst) as browser:
            # The browser naming another pair (even one it may see) chooses nothing.
            framed = proxied(
                demo, browser, headers={"x-tenant-id": other[0], "x-sub-tenant-id": other[1]}
            )
        assert framed.status_code == 200
        found = _HEADING.search(framed.text)
        assert found
        assert found.group(1) == f"Insights for tenant {tenant} / sub-tenant {sub_tenant}"
        assert demo.vendor.api_key not in framed.text
