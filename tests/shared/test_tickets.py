"""Launch tickets are single-use across instances: they live in the shared database, and
redeeming one deletes its row and reads it back in one statement (``DELETE … RETURNING``),
so no Redis is needed for it. SQLite file and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from bff.clock import ManualClock
from bff.operations import launches
from bff.settings import Settings
from tests.shared.conftest import Instance, two_instances
from tests.web.helpers import call, services_of
from tests.web.partner.test_token import ACME, make_partner, seed_pairs


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bff.db'}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture
def pair(settings: Settings, clock: ManualClock) -> Iterator[tuple[Instance, Instance]]:
    with two_instances(settings, clock) as found:
        yield found


def new_ticket(instance: Instance) -> str:
    svc = services_of(instance.client)
    seed_pairs(instance.client)
    app_id = make_partner(instance.client).app_id
    user = launches.PartnerUser("42")
    found = call(
        instance.client,
        lambda: launches.create_launch(svc.database, app_id, user, ACME, None, now=svc.clock.now()),
    )
    return found.ticket


def redeem(instance: Instance, ticket: str) -> httpx2.Response:
    return instance.client.get("/embed/launch", params={"ticket": ticket})


def test_a_ticket_redeemed_on_a_is_refused_on_b(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    ticket = new_ticket(a)
    assert redeem(a, ticket).status_code == 303
    refused = redeem(b, ticket)
    assert refused.status_code == 410
    assert "set-cookie" not in refused.headers


def test_a_ticket_redeemed_on_both_at_once_serves_one(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    ticket = new_ticket(a)
    together = threading.Barrier(2)
    statuses: list[int] = []

    def redeem_on(instance: Instance) -> None:
        together.wait()
        statuses.append(redeem(instance, ticket).status_code)

    threads = [threading.Thread(target=redeem_on, args=(instance,)) for instance in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 410]
