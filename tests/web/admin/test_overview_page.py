"""``/admin/``: counts, token cache health, and the upstream calls and errors of the
last 24 hours as charts and as numbers, moved across hours with the clock."""

from __future__ import annotations

import contextlib
import re

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.broker.scope import TokenScope
from bff.clock import ManualClock
from bff.demo.faults import Fault
from bff.demo.vendor import VendorConfig
from bff.errors import UpstreamError
from bff.settings import Settings
from tests.web.admin.helpers import ADMIN
from tests.web.dashboard.fixtures import RecordingVendor, vendor_settings
from tests.web.helpers import call, make_user, other_browser, services_of, sign_in

_HOUR_ROW = re.compile(r"<tr><td>([\d-]+ \d\d:00)</td><td>(\d+)</td><td>(\d+)</td></tr>")


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(settings: Settings, clock: ManualClock, vendor: RecordingVendor) -> Starlette:
    return create_app(
        vendor_settings(settings, vendor.config, "post"), clock=clock, vendor_transport=vendor
    )


def obtain(client: TestClient, tenant: str, sub: str) -> None:
    broker = services_of(client).broker
    with contextlib.suppress(UpstreamError):
        call(client, lambda: broker.get(TokenScope("default", tenant, sub)))


def settle(client: TestClient) -> None:
    """Run the refreshes the clock made due, and wait for them (the scheduler may have
    started them already)."""
    broker = services_of(client).broker
    call(client, broker.refresh_due)
    call(client, broker.wait_idle)


def overview(client: TestClient) -> str:
    """The page, for an admin signed in now (moving the clock ends idle sessions)."""
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    page = browser.get("/admin/")
    assert page.status_code == 200
    return page.text


def hours(html: str) -> dict[str, tuple[int, int]]:
    """The hourly table, only the hours with calls."""
    rows = {hour: (int(calls), int(errors)) for hour, calls, errors in _HOUR_ROW.findall(html)}
    assert len(rows) == 24
    return {hour: counts for hour, counts in rows.items() if counts != (0, 0)}


def test_counts(admin: TestClient, client: TestClient) -> None:
    make_user(client, "ann@example.com", scopes=[("acme", "north"), ("acme", "south")])
    make_user(client, "bob@example.com", scopes=[("acme", "north")])
    page = admin.get("/admin/")
    assert page.status_code == 200
    assert 'aria-current="page">Overview' in page.text
    for count, label in [(3, "Users"), (1, "Tenants"), (2, "Sub-tenants"), (3, "Mappings")]:
        assert f'<div class="stat"><strong>{count}</strong> {label}</div>' in page.text
    assert '<div class="stat"><strong>0</strong> Partner apps</div>' in page.text
    assert "No upstream errors since this process started." in page.text
    assert admin.get("/admin").status_code in (307, 308)


def test_calls_and_errors_per_hour(
    admin: TestClient, client: TestClient, vendor: RecordingVendor, clock: ManualClock
) -> None:
    obtain(client, "acme", "north")
    obtain(client, "acme", "south")
    vendor.config.fault = Fault("forbidden")
    obtain(client, "globex", "emea")
    vendor.config.fault = None
    clock.advance(3600 + 60)
    obtain(client, "initech", "west")

    page = overview(client)
    assert hours(page) == {"2026-01-01 00:00": (3, 1), "2026-01-01 01:00": (1, 0)}
    assert "Upstream calls per hour: <strong>4</strong> in the last 24 hours." in page
    assert "Upstream errors per hour: <strong>1</strong> in the last 24 hours." in page
    assert (
        '<desc id="calls-chart-desc">4 calls from 2025-12-31 02:00 to 01:59 UTC, '
        "at most 3 in one hour.</desc>"
    ) in page
    assert page.count('<rect class="bar"') == 24
    assert page.count('<rect class="bar error"') == 24
    # The busiest hour fills the chart; the others scale to it.
    assert 'y="0.0" width="8" height="60.0"><title>00:00 UTC: 3 calls</title>' in page
    assert 'y="40.0" width="8" height="20.0"><title>01:00 UTC: 1 calls</title>' in page
    assert "<td><code>rejected</code></td>" in page
    assert "the vendor refused the request (403): Forbidden" in page
    # Token cache health: three valid tokens, one key failing; none expiring soon.
    assert '<div class="stat"><strong>3</strong> cached tokens</div>' in page
    assert '<div class="stat"><strong>0</strong> expiring within the hour</div>' in page
    assert '<div class="stat"><strong>1</strong> keys failing</div>' in page

    # A day later: the first hour has left the window; the last token is due for its
    # background refresh, which the vendor now refuses, and runs out within the hour.
    vendor.config.fault = Fault("forbidden")
    clock.advance(23 * 3600)
    settle(client)
    later = overview(client)
    assert hours(later) == {"2026-01-01 01:00": (1, 0), "2026-01-02 00:00": (1, 1)}
    assert '<div class="stat"><strong>1</strong> cached tokens</div>' in later
    assert '<div class="stat"><strong>1</strong> expiring within the hour</div>' in later
    clock.advance(3600)
    settle(client)
    assert hours(overview(client)) == {"2026-01-02 00:00": (1, 1)}


def test_error_messages_render_escaped(
    admin: TestClient, client: TestClient, vendor: RecordingVendor
) -> None:
    vendor.config.fault = Fault.rate_limit("30", message='Zoë says "<script>alert(1)</script>"')
    obtain(client, "acme", "north")
    page = admin.get("/admin/")
    assert "<script>alert" not in page.text
    assert "Zoë says &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page.text
    assert "<td><code>rate_limited</code></td>" in page.text
