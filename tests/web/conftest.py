"""Fixtures for whole-app web tests.

``client`` talks to ``https://testserver`` (the ``settings`` public URL), so the
``Secure`` ``__Host-`` cookies a production deployment sets are stored and sent
back exactly as a browser would; it does not follow redirects, so tests see them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bff import passwords
from bff.app import create_app
from bff.clock import ManualClock
from bff.settings import Settings

PUBLIC_URL = "https://testserver"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return dataclasses.replace(base_settings, public_url=PUBLIC_URL)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Starlette:
    return create_app(settings, clock=clock)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id still, with the cheapest parameters: tests hash many passwords."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("no account has this password"))
