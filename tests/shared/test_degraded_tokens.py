"""Redis lost mid-run: warm dashboards keep working, ``/readyz`` says degraded, and bff
rejoins by itself when Redis is back.

The Redis here is a private ``redis-server`` the test starts, stops and starts again
on its own port; the shared one is never touched.
"""

from __future__ import annotations

import dataclasses

import anyio
import pytest
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.settings import Settings
from bff.shared.redis_link import RedisLink, State
from tests.shared.conftest import PUBLIC_URL, PrivateRedis
from tests.web.dashboard.fixtures import RecordingVendor, sign_in_analyst, vendor_settings
from tests.web.helpers import call, services_of

pytestmark = pytest.mark.redis

PAIR = ("globex", "emea")


def wait_until(client: TestClient, link: RedisLink, state: State) -> None:
    async def wait() -> None:
        with anyio.fail_after(30):  # reconnecting backs off up to 5 s between tries
            await link.wait_until(state)

    call(client, wait)


def dashboard(client: TestClient, vendor: RecordingVendor) -> str:
    page = client.get("/")
    assert page.status_code == 200
    token = vendor.tokens[-1]
    assert token in page.text  # delivered in the iframe's fragment
    return token


def test_warm_dashboards_survive_a_lost_redis_and_bff_rejoins_it(
    settings: Settings, clock: ManualClock, private_redis: PrivateRedis, prefix: str
) -> None:
    private_redis.start()
    vendor = RecordingVendor(VendorConfig(clock=clock))
    configured = dataclasses.replace(
        vendor_settings(settings, vendor.config, "fragment"), redis_url=private_redis.url
    )
    app = create_app(configured, clock=clock, vendor_transport=vendor)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        link = services_of(client).shared
        assert link is not None and link.healthy
        sign_in_analyst(client, pairs=(PAIR,))
        warm = dashboard(client, vendor)
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"database": True, "redis": "connected"},
        }

        private_redis.stop()
        wait_until(client, link, "degraded")
        for _ in range(3):
            assert dashboard(client, vendor) == warm  # from memory, no vendor call
        assert vendor.config.pair_calls == {PAIR: 1}
        ready = client.get("/readyz")
        assert ready.status_code == 200  # degraded is still ready
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": True, "redis": "degraded"},
        }
        assert "bff_redis_connected 0.0" in client.get("/metrics").text

        private_redis.start()  # empty: it kept nothing
        wait_until(client, link, "connected")
        assert client.get("/readyz").json()["checks"]["redis"] == "connected"
        assert "bff_redis_connected 1.0" in client.get("/metrics").text
        # Back in the fleet: memory was dropped (purges may have been missed), so the
        # token is fetched once more, under the shared lock, and written to Redis.
        fresh = dashboard(client, vendor)
        assert vendor.config.pair_calls == {PAIR: 2}
        assert dashboard(client, vendor) == fresh
        assert vendor.config.pair_calls == {PAIR: 2}
