"""Revocations across instances: what one instance ends, another refuses at once.

Instances A and B share a database and Redis, and one clock that never moves: B's
cached copies never reach their 15 s revalidation, so only the broadcast can make B
refuse. Each test waits for B to hear A's message (at most
:data:`~tests.shared.conftest.BROADCAST_DEADLINE`), then asks B.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from sqlalchemy import delete
from starlette.testclient import TestClient

from bff.clock import ManualClock
from bff.settings import Settings
from bff.shared import revocations as revocations_module
from bff.shared.redis_link import RedisLink
from bff.shared.revocations import MappingsRevoked, Revocations, SessionsRevoked
from bff.store.database import Database
from bff.store.migrate import upgrade
from bff.store.models import SessionRecord, UserScope
from bff.store.users import add_user, map_user
from bff.web.auth.access import Mappings
from bff.web.auth.sessions import SessionStore, _Row, hash_session_id
from tests.shared.conftest import BROADCAST_DEADLINE, Heard, Instance, client_of, started_link
from tests.web.admin.helpers import ADMIN, bearer, key_for
from tests.web.helpers import (
    call,
    make_user,
    other_browser,
    services_of,
    session_cookie,
    sign_in,
)
from tests.web.partner.test_token import (
    LAUNCH,
    bearer_headers,
    launch,
    make_partner,
    request_token,
    seed_pairs,
)

pytestmark = pytest.mark.redis

ANN = "ann@example.com"
NORTH = ("acme", "north")
SOUTH = ("acme", "south")
WHOAMI = "/api/_probe/whoami"  # 200 with a live session, else a 401 problem


def session_id_of(instance: Instance, cookie: str) -> str:
    session_id = services_of(instance.client).auth.cookies.unsign_session(cookie)
    assert session_id is not None
    return session_id


def whoami(instance: Instance, cookie: str) -> int:
    response = instance.client.get(WHOAMI, headers={"Cookie": f"__Host-bff_session={cookie}"})
    return response.status_code


def signed_in(browser: TestClient, email: str) -> str:
    """Sign ``browser`` in; its session cookie."""
    assert sign_in(browser, email).status_code == 303
    cookie = session_cookie(browser)
    assert cookie is not None
    return cookie


def heard_session(hash_: str) -> Callable[[Heard], bool]:
    return lambda message: isinstance(message, SessionsRevoked) and hash_ in message.hashes


def test_a_sign_out_on_a_is_refused_on_b_at_once(shared_pair: tuple[Instance, Instance]) -> None:
    a, b = shared_pair
    make_user(a.client, ANN)
    browser = other_browser(a.client)
    cookie = signed_in(browser, ANN)
    assert whoami(b, cookie) == 200  # B holds it in its cache now
    csrf = browser.get("/_probe/token").text
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert b.listener is not None
    b.listener.wait_for(heard_session(hash_session_id(session_id_of(a, cookie))))
    assert whoami(b, cookie) == 401


def test_disabling_a_user_on_a_ends_their_sessions_on_b(
    shared_pair: tuple[Instance, Instance],
) -> None:
    a, b = shared_pair
    make_user(a.client, ADMIN, is_admin=True)
    admin = bearer(key_for(a.client, ADMIN))
    ann_id = make_user(a.client, ANN)
    on_a, on_b = signed_in(other_browser(a.client), ANN), signed_in(other_browser(b.client), ANN)
    assert (whoami(b, on_a), whoami(b, on_b)) == (200, 200)
    response = a.client.patch(f"/api/v1/users/{ANN}", headers=admin, json={"disabled": True})
    assert response.status_code == 200
    assert b.listener is not None
    b.listener.wait_for(lambda m: isinstance(m, SessionsRevoked) and m.user_id == ann_id)
    assert (whoami(b, on_a), whoami(b, on_b)) == (401, 401)


def test_removing_a_mapping_on_a_is_honoured_on_b(shared_pair: tuple[Instance, Instance]) -> None:
    a, b = shared_pair
    make_user(a.client, ADMIN, is_admin=True)
    admin = bearer(key_for(a.client, ADMIN))
    ann_id = make_user(a.client, ANN, scopes=[NORTH, SOUTH])
    cookie = signed_in(other_browser(b.client), ANN)
    svc_b = services_of(b.client)
    session_id = session_id_of(b, cookie)
    call(b.client, lambda: svc_b.sessions.set_scope(session_id, SOUTH))
    assert call(b.client, lambda: svc_b.mappings.allows(ann_id, SOUTH))  # cached on B
    assert whoami(b, cookie) == 200
    response = a.client.put(
        f"/api/v1/users/{ANN}/mappings",
        headers=admin,
        json={"items": [{"tenant_id": "acme", "sub_tenant_id": "north"}]},
    )
    assert response.status_code == 200
    assert b.listener is not None
    b.listener.wait_for(lambda m: isinstance(m, MappingsRevoked) and ann_id in (m.user_ids or ()))
    b.listener.wait_for(heard_session(hash_session_id(session_id)))
    assert not call(b.client, lambda: svc_b.mappings.allows(ann_id, SOUTH))
    assert call(b.client, lambda: svc_b.mappings.pairs(ann_id)) == (NORTH,)
    assert whoami(b, cookie) == 401


def test_a_deleted_api_key_fails_on_b_on_the_next_request(
    shared_pair: tuple[Instance, Instance],
) -> None:
    """Keys are not cached: every instance asks the database, so no message is needed."""
    a, b = shared_pair
    make_user(a.client, ANN)
    headers = bearer(key_for(a.client, ANN))
    assert b.client.get("/api/v1/user", headers=headers).status_code == 200
    assert a.client.delete("/api/v1/user/keys/main", headers=headers).status_code == 204
    assert b.client.get("/api/v1/user", headers=headers).status_code == 401


def test_revoking_a_partner_app_on_a_ends_its_token_and_embed_sessions_on_b(
    shared_pair: tuple[Instance, Instance],
) -> None:
    a, b = shared_pair
    make_user(a.client, ADMIN, is_admin=True)
    admin = bearer(key_for(a.client, ADMIN))
    seed_pairs(a.client)
    partner = make_partner(a.client)
    token = request_token(a.client, partner)
    assert launch(b.client, token).status_code == 201
    # An embed session redeemed on B, and cached there.
    ticket = launch(b.client, token).json()["url"].split("ticket=", 1)[1]
    redeemed = b.client.get("/embed/launch", params={"ticket": ticket})
    assert redeemed.status_code == 303
    handle = redeemed.headers["location"].split("#handle=", 1)[1]
    svc_b = services_of(b.client)
    session_id = session_id_of(b, handle)
    assert call(b.client, lambda: svc_b.sessions.load(session_id)) is not None
    response = a.client.post(f"/api/v1/partner-apps/{partner.app_id}/revoke", headers=admin)
    assert response.status_code == 200
    assert b.listener is not None
    b.listener.wait_for(
        lambda m: isinstance(m, SessionsRevoked) and m.partner_app_id == partner.app_id
    )
    assert call(b.client, lambda: svc_b.sessions.load(session_id)) is None
    refused = b.client.post("/api/v1/embed/launches", headers=bearer_headers(token), json=LAUNCH)
    assert refused.status_code == 401


def test_without_the_broadcast_b_refuses_within_its_revalidation_window(
    settings: Settings, shared_settings: Settings, clock: ManualClock
) -> None:
    """A has no Redis (a lost message): B refuses once its cached copy is 15 s old."""
    with client_of(settings, clock) as a_client, client_of(shared_settings, clock) as b_client:
        a, b = Instance(a_client, None), Instance(b_client, None)
        make_user(a.client, ANN)
        cookie = signed_in(other_browser(a.client), ANN)
        assert whoami(b, cookie) == 200
        call(a.client, lambda: services_of(a.client).sessions.revoke(session_id_of(a, cookie)))
        clock.advance(14.9)
        assert whoami(b, cookie) == 200  # the bound, not the goal
        clock.advance(0.1)
        assert whoami(b, cookie) == 401


# The caches on their own, against a real link.


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'bff.db'}")
    await upgrade(database.engine)
    yield database
    await database.dispose()


@pytest.mark.anyio
async def test_after_a_lost_link_the_caches_read_everything_again(
    database: Database, redis_url: str, prefix: str, clock: ManualClock
) -> None:
    """Messages sent while the link was down are lost: on reconnecting, the caches drop
    what they hold, so a revocation made meanwhile is honoured at once."""
    async with database.session() as db:
        user = await add_user(db, ANN, None)
        await map_user(db, user, *NORTH)
    async with started_link(redis_url, prefix) as link:
        revocations = Revocations(link)
        sessions = SessionStore(
            database, clock, idle_seconds=600, max_seconds=3600, revocations=revocations
        )
        mappings = Mappings(database, clock, revocations=revocations)
        session = await sessions.create(user.id, scope=NORTH)
        assert await mappings.allows(user.id, NORTH)
        async with database.session() as db:  # behind the caches' back, as A would
            await db.execute(delete(SessionRecord))
            await db.execute(delete(UserScope))
        assert await sessions.load(session.id) is not None  # still cached
        assert await mappings.allows(user.id, NORTH)
        back = anyio.Event()

        async def reconnected() -> None:
            back.set()

        link.on_reconnect(reconnected)  # runs after the caches' own callback
        link.lost(ConnectionError("cut"))
        assert not link.healthy
        with anyio.fail_after(10):
            await back.wait()
        assert await sessions.load(session.id) is None
        assert not await mappings.allows(user.id, NORTH)


@pytest.mark.anyio
async def test_a_read_under_way_when_a_message_arrives_is_read_again(
    database: Database, redis_url: str, prefix: str, clock: ManualClock
) -> None:
    """B was reading a session's row when A deleted it and said so: B must not cache the
    row it read before the deletion."""
    async with database.session() as db:
        user = await add_user(db, ANN, None)

    read_done, release = anyio.Event(), anyio.Event()

    class SlowStore(SessionStore):
        """Holds its first database read's answer until ``release`` is set."""

        slow = True

        async def _read(self, key: str) -> _Row | None:
            row = await super()._read(key)
            if self.slow:
                self.slow = False
                read_done.set()
                await release.wait()
            return row

    async with started_link(redis_url, prefix) as link_a, started_link(redis_url, prefix) as link_b:
        store_a = SessionStore(
            database, clock, idle_seconds=600, max_seconds=3600, revocations=Revocations(link_a)
        )
        revocations_b = Revocations(link_b)
        store_b = SlowStore(
            database, clock, idle_seconds=600, max_seconds=3600, revocations=revocations_b
        )
        heard = anyio.Event()
        revocations_b.on_sessions(lambda message: heard.set(), lambda: None)
        await _both_subscribed(link_a, link_b)
        session = await store_a.create(user.id)
        answers: list[object] = []

        async def load_on_b() -> None:
            answers.append(await store_b.load(session.id))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(load_on_b)
            await read_done.wait()  # B has read the row, still there
            await store_a.revoke_user(user.id)
            with anyio.fail_after(1):
                await heard.wait()
            release.set()
        assert answers == [None]
        assert await store_b.load(session.id) is None


async def _both_subscribed(*links: RedisLink) -> None:
    with anyio.fail_after(BROADCAST_DEADLINE):
        for link in links:
            await link.listening()


@pytest.mark.anyio
async def test_a_process_ignores_its_own_messages_and_a_large_change_means_everyone(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocations_module, "MAX_IDS", 2)
    async with started_link(redis_url, prefix) as link_a, started_link(redis_url, prefix) as link_b:
        a, b = Revocations(link_a), Revocations(link_b)
        heard_a: list[Heard] = []
        heard_b: list[Heard] = []
        all_four = anyio.Event()

        def hear_on_b(message: Heard) -> None:
            heard_b.append(message)
            if len(heard_b) == 4:
                all_four.set()

        for revocations, hear in ((a, heard_a.append), (b, hear_on_b)):
            revocations.on_mappings(hear, lambda: None)
            revocations.on_sessions(hear, lambda: None)
        await _both_subscribed(link_a, link_b)
        await a.mappings_revoked([3, 1, 1])
        await a.mappings_revoked([1, 2, 3])
        await a.sessions_revoked(["h1", "h2", "h3"], partner_app_id=9)
        await a.sessions_revoked(["h1", "h2", "h3"])
        with anyio.fail_after(BROADCAST_DEADLINE):
            await all_four.wait()
        assert heard_b == [
            MappingsRevoked((1, 3)),
            MappingsRevoked(None),  # too many to name: every user's pairs
            SessionsRevoked((), partner_app_id=9),  # the app names them all
            SessionsRevoked(("h1", "h2", "h3")),  # nothing else would
        ]
        assert heard_a == []
