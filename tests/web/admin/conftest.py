from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings
from tests.web.admin.helpers import ADMIN
from tests.web.helpers import add_probe_routes, make_user, other_browser, sign_in


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Starlette:
    """The whole app, plus the probe routes (``/_probe/token`` gives a session's CSRF token)."""
    app = create_app(settings, clock=clock)
    add_probe_routes(app)
    return app


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    """A second browser on the same app, signed in as an administrator."""
    make_user(client, ADMIN, is_admin=True)
    browser = other_browser(client)
    assert sign_in(browser, ADMIN).status_code == 303
    return browser
