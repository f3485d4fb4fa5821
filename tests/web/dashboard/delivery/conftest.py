"""Every test here runs once per delivery mode, against the recording demo vendor."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from bff.clock import ManualClock
from bff.demo.vendor import VendorConfig
from bff.settings import DELIVERY_MODES, DeliveryMode, Settings
from tests.web.dashboard.fixtures import RecordingVendor, dashboard_app


@pytest.fixture(params=DELIVERY_MODES)
def delivery(request: pytest.FixtureRequest) -> DeliveryMode:
    mode: DeliveryMode = request.param
    return mode


@pytest.fixture
def vendor(clock: ManualClock) -> RecordingVendor:
    return RecordingVendor(VendorConfig(clock=clock))


@pytest.fixture
def app(
    settings: Settings, clock: ManualClock, vendor: RecordingVendor, delivery: DeliveryMode
) -> Starlette:
    return dashboard_app(settings, clock, vendor, delivery)
