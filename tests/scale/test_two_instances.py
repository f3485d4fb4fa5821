"""Every guarantee of one process holds across two instances sharing PostgreSQL and Redis."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import pytest

from bff.demo.seed import DemoAccount
from bff.operations.partner_apps import NewSecret
from tests.scale.conftest import PARTNER_ORIGIN, Fleet, PrivateRedis, fleet_of_two
from tests.test_serve import refuses_connections

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

COLD_LOADS = 300
# Failed sign-ins per (account, client address) per window (bff.web.auth.ratelimit).
PER_ACCOUNT_AND_ADDRESS = 5
# How soon a revocation must reach every instance. Sessions are re-read from the
# database only every 15 s without a broadcast, so only Redis can meet this bound
# (the message takes milliseconds).
BROADCAST_BOUND = 1.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_token(browser: httpx2.AsyncClient, path: str = "/login") -> str:
    page = await browser.get(path)
    token = _CSRF.search(page.text)
    assert token, page.text
    return token[1]


async def sign_in(browser: httpx2.AsyncClient, account: DemoAccount) -> None:
    data = {
        "email": account.email,
        "password": account.password,
        "csrf_token": await csrf_token(browser),
    }
    assert (await browser.post("/login", data=data)).status_code == 303


def cookies_of(browser: httpx2.AsyncClient) -> dict[str, str]:
    return dict(browser.cookies.items())


async def metric(url: str, name: str) -> float:
    """The sum of a Prometheus counter's samples on one instance."""
    async with httpx2.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") or line.startswith(f"{name} ")
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll ``check`` until it holds; returns how long that took. Fails after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"not within {within:g} s: {what}"
        await anyio.sleep(0.02)
    return time.monotonic() - started


async def test_cold_dashboard_loads_on_both_instances_make_one_vendor_call(
    fleet: Fleet,
) -> None:
    """300 concurrent first loads of one pair, half on each instance, all held while the
    vendor answers: one vendor call in all, and every load gets its page."""
    limits = httpx2.Limits(max_connections=COLD_LOADS, max_keepalive_connections=COLD_LOADS)
    async with httpx2.AsyncClient(base_url=fleet.a, timeout=60) as browser:
        await sign_in(browser, fleet.account)
        cookies = cookies_of(browser)
    fleet.gate.close()
    statuses: list[int] = []
    async with (
        httpx2.AsyncClient(timeout=60, limits=limits, cookies=cookies) as a,
        httpx2.AsyncClient(timeout=60, limits=limits, cookies=cookies) as b,
    ):

        async def load(client: httpx2.AsyncClient, url: str) -> None:
            statuses.append((await client.get(f"{url}/")).status_code)

        async with anyio.create_task_group() as loads:
            for n in range(COLD_LOADS):
                client, url = (a, fleet.a) if n % 2 == 0 else (b, fleet.b)
                loads.start_soon(load, client, url)
            await anyio.to_thread.run_sync(fleet.gate.wait_for, 1)

            async def all_waiting() -> bool:
                misses = [
                    await metric(url, "bff_token_cache_misses_total") for url in (fleet.a, fleet.b)
                ]
                return sum(misses) >= COLD_LOADS

            # Every load has asked its broker for the token; the vendor still holds the call.
            await eventually(all_waiting, 60, "every load waiting for the token")
            fleet.gate.open()
    assert statuses == [200] * COLD_LOADS, fleet.log_text()
    assert fleet.vendor.calls["token"] == 1
    assert fleet.gate.arrived == 1


async def test_a_sign_out_on_one_instance_is_refused_on_the_other(fleet: Fleet) -> None:
    async with (
        httpx2.AsyncClient(base_url=fleet.a, timeout=30) as a,
        httpx2.AsyncClient(base_url=fleet.b, timeout=30) as b,
    ):
        await sign_in(a, fleet.account)
        b.cookies.update(cookies_of(a))
        assert (await b.get("/")).status_code == 200  # B has the session in its cache
        token = await csrf_token(a, "/")
        assert (await a.post("/logout", data={"csrf_token": token})).status_code == 303

        async def refused_on_b() -> bool:
            response = await b.get("/")
            return response.status_code != 200

        took = await eventually(refused_on_b, BROADCAST_BOUND, "B refusing the session")
        response = await b.get("/")
        assert response.status_code == 303
        assert "/login" in response.headers["location"]
    print(f"B refused the signed-out session {took * 1000:.0f} ms after the sign-out")


async def test_failed_sign_ins_on_one_instance_count_on_the_other(fleet: Fleet) -> None:
    """Five failures for one account from one address, spread over both instances, use up
    its allowance on both."""
    async with (
        httpx2.AsyncClient(base_url=fleet.a, timeout=30) as a,
        httpx2.AsyncClient(base_url=fleet.b, timeout=30) as b,
    ):

        async def fail(browser: httpx2.AsyncClient) -> int:
            data = {
                "email": fleet.account.email,
                "password": "not the password",
                "csrf_token": await csrf_token(browser),
            }
            return (await browser.post("/login", data=data)).status_code

        failures = [await fail(a if n % 2 == 0 else b) for n in range(PER_ACCOUNT_AND_ADDRESS)]
        assert failures == [400] * PER_ACCOUNT_AND_ADDRESS
        # A had 3 and B 2 of them: each alone is under the limit.
        assert await fail(b) == 429
        assert await fail(a) == 429


async def test_a_launch_redeemed_on_one_instance_is_refused_on_the_other(fleet: Fleet) -> None:
    partner = fleet.partner
    async with (
        httpx2.AsyncClient(base_url=fleet.a, timeout=30) as a,
        httpx2.AsyncClient(base_url=fleet.b, timeout=30) as b,
    ):
        token = await a.post(
            "/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": partner.app.client_id,
                "client_secret": partner.client_secret,
            },
        )
        assert token.status_code == 200, token.text
        launch = await a.post(
            "/api/v1/embed/launches",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            json={
                "user": {"id": "42", "name": "Ann"},
                "tenant_id": "acme",
                "sub_tenant_id": "north",
                "origin": PARTNER_ORIGIN,
            },
        )
        assert launch.status_code == 201, launch.text
        path = httpx2.URL(launch.json()["url"]).raw_path.decode()
        assert (await a.get(path)).status_code == 303
        again = await b.get(path)
        assert again.status_code == 410
        assert "expired or was already used" in again.text


async def test_redis_stopped_leaves_warm_dashboards_working_and_restarted_recovers(
    tmp_path: Path,
    scale_database: tuple[str, DemoAccount, NewSecret],
    private_redis: PrivateRedis,
) -> None:
    database_url, account, partner = scale_database
    with fleet_of_two(tmp_path, database_url, private_redis.url, account, partner) as fleet:
        async with (
            httpx2.AsyncClient(base_url=fleet.a, timeout=30) as a,
            httpx2.AsyncClient(base_url=fleet.b, timeout=30) as b,
        ):
            await sign_in(a, account)
            b.cookies.update(cookies_of(a))
            for browser in (a, b):  # warm tokens on both
                assert (await browser.get("/")).status_code == 200
                assert (await browser.get("/readyz")).json()["status"] == "ready"
            calls = fleet.vendor.calls["token"]

            private_redis.stop()
            for browser in (a, b):
                for _ in range(5):
                    assert (await browser.get("/")).status_code == 200, fleet.log_text()

                async def degraded(browser: httpx2.AsyncClient = browser) -> bool:
                    ready = await browser.get("/readyz")
                    assert ready.status_code == 200
                    return bool(ready.json()["status"] == "degraded")

                await eventually(degraded, 30, "/readyz saying degraded")
            assert fleet.vendor.calls["token"] == calls  # served from memory

            private_redis.start()
            for browser in (a, b):

                async def recovered(browser: httpx2.AsyncClient = browser) -> bool:
                    ready = (await browser.get("/readyz")).json()
                    return bool(
                        ready["status"] == "ready" and ready["checks"]["redis"] == "connected"
                    )

                await eventually(recovered, 30, "/readyz ready again")
                assert (await browser.get("/")).status_code == 200


async def test_sigterm_mid_vendor_call_finishes_it_and_the_other_instance_adopts_the_token(
    fleet: Fleet,
) -> None:
    """A holds the pair's lock while its vendor call is held; B waits for it. SIGTERM on
    A: A stops accepting, finishes its load and exits 0; B gets the token A wrote."""
    async with (
        httpx2.AsyncClient(base_url=fleet.a, timeout=60) as a,
        httpx2.AsyncClient(base_url=fleet.b, timeout=60) as b,
    ):
        await sign_in(a, fleet.account)
        b.cookies.update(cookies_of(a))
        fleet.gate.close()
        statuses: dict[str, int] = {}

        async def load(name: str, browser: httpx2.AsyncClient) -> None:
            statuses[name] = (await browser.get("/")).status_code

        async with anyio.create_task_group() as loads:
            loads.start_soon(load, "a", a)
            await anyio.to_thread.run_sync(fleet.gate.wait_for, 1)  # A holds the lock
            loads.start_soon(load, "b", b)

            async def b_waiting() -> bool:
                return await metric(fleet.b, "bff_token_cache_misses_total") >= 1

            await eventually(b_waiting, 30, "B waiting for the token")
            process = fleet.processes[0]
            process.send_signal(signal.SIGTERM)

            async def a_closed() -> bool:
                assert process.poll() is None, "A exited with a request in flight"
                return await anyio.to_thread.run_sync(refuses_connections, fleet.a)

            await eventually(a_closed, 30, "A refusing connections after SIGTERM")
            fleet.gate.open()
        assert statuses == {"a": 200, "b": 200}, fleet.log_text()
        assert await anyio.to_thread.run_sync(process.wait, 30) == 0
    assert fleet.vendor.calls["token"] == 1
    assert fleet.gate.arrived == 1
