"""Vendor connections saved on one instance reach the others' brokers at once."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from bff.broker import TokenBroker
from bff.operations import connections as ops
from bff.shared.token_cache import CHANNEL
from tests.shared.conftest import BROADCAST_DEADLINE, Instance
from tests.web.helpers import call, services_of

pytestmark = pytest.mark.redis

PARTNER = ops.ConnectionInput(
    id="partner",
    kind="header-exchange",
    base_url="https://vendor.example",
    api_key="partner-key",
    api_secret="partner-secret",
)


class Watch:
    """Token-cache messages ``instance`` handled; registered before anything is sent, and
    after the cache's own handler, so it runs once that one is done."""

    def __init__(self, instance: Instance) -> None:
        self._client = instance.client
        self._svc = services_of(instance.client)
        link = self._svc.shared
        assert link is not None
        self._heard = anyio.Event()

        async def subscribe() -> None:
            link.subscribe(CHANNEL, self._wake)
            with anyio.fail_after(BROADCAST_DEADLINE):
                await link.listening()

        call(self._client, subscribe)

    async def _wake(self, message: bytes) -> None:
        self._heard.set()
        self._heard = anyio.Event()

    def until(self, holds: Callable[[TokenBroker], bool]) -> None:
        async def wait() -> None:
            with anyio.fail_after(BROADCAST_DEADLINE):
                while not holds(self._svc.broker):
                    await self._heard.wait()

        call(self._client, wait)


def test_a_connection_saved_or_deleted_on_a_is_reloaded_on_b(
    shared_pair: tuple[Instance, Instance],
) -> None:
    a, b = shared_pair
    watch = Watch(b)
    svc = services_of(a.client)
    assert not services_of(b.client).broker.has_connection("partner")

    async def save() -> None:
        await ops.save_connection(
            svc.database,
            svc.secret_box,
            "admin@example.com",
            PARTNER,
            settings=svc.settings,
            clock=svc.clock,
            create=True,
            broker=svc.broker,
        )

    async def delete() -> None:
        await ops.delete_connection(
            svc.database,
            "admin@example.com",
            "partner",
            settings=svc.settings,
            clock=svc.clock,
            broker=svc.broker,
        )

    call(a.client, save)
    watch.until(lambda broker: broker.has_connection("partner"))
    call(a.client, delete)
    watch.until(lambda broker: not broker.has_connection("partner"))
