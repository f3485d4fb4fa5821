"""The shared lock: leases renewed while the holder works, fencing, compare-and-delete."""

from __future__ import annotations

import anyio
import pytest

from bff.shared.lock import Lease, RedisLocks
from tests.shared.conftest import OpenLink

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def renewals(locks: RedisLocks, lease: Lease, count: int) -> None:
    while lease.renewals < count:
        await locks.renewed.wait()


async def test_a_slow_holder_keeps_its_lock_while_its_lease_is_renewed(
    open_link: OpenLink,
) -> None:
    link = await open_link()
    # Renewed ten times a lease: a busy test machine stalling the loop for most of a
    # second must not make the lease lapse (that would be the test's fault, not the lock's).
    first = RedisLocks(link, lease=1.0, renew_every=0.1)
    second = RedisLocks(await open_link(), lease=1.0)
    name = link.key("lock", "slow")
    got_it = anyio.Event()
    fences: list[int] = []

    async def contender() -> None:
        async with second.hold(name) as lease:
            assert lease is not None
            fences.append(lease.fence)
            got_it.set()

    held_fence = 0
    async with anyio.create_task_group() as group:
        async with first.hold(name) as held:
            assert held is not None
            held_fence = held.fence
            group.start_soon(contender)
            # 25 renewals: the 1 s lease would have lapsed twice over without them.
            await renewals(first, held, 25)
            assert not got_it.is_set()
            assert not held.lost
        await got_it.wait()
    assert fences == [held_fence + 1]


async def test_a_holder_whose_lease_lapsed_cannot_overwrite_the_newer_value(
    open_link: OpenLink,
) -> None:
    link = await open_link()
    # Never renewed: the lease lapses while its holder is blocked.
    lapsing = RedisLocks(link, lease=0.05, renew_every=3600)
    other = RedisLocks(await open_link(), lease=5.0)
    name, target = link.key("lock", "fenced"), link.key("value", "fenced")
    newer_written = anyio.Event()

    async def newer() -> None:
        async with other.hold(name) as lease:
            assert lease is not None
            assert await other.fenced_set(lease, target, b"newer", 60_000)
            newer_written.set()
            # Still held: the lapsed holder's release must not free it.
            await released_by_old.wait()
            assert await link.client.get(name) == lease.token

    released_by_old = anyio.Event()
    async with anyio.create_task_group() as group:
        async with lapsing.hold(name) as old:
            assert old is not None
            group.start_soon(newer)
            await newer_written.wait()
            assert not await lapsing.fenced_set(old, target, b"older", 60_000)
        released_by_old.set()
    assert await link.client.get(target) == b"newer"


async def test_a_holder_whose_lease_lapsed_still_writes_when_nobody_took_the_lock(
    open_link: OpenLink,
) -> None:
    link = await open_link()
    locks = RedisLocks(link, lease=0.05, renew_every=3600)
    name, target = link.key("lock", "alone"), link.key("value", "alone")
    async with locks.hold(name) as lease:
        assert lease is not None
        await link.client.delete(name)  # as if the lease had run out
        assert await locks.fenced_set(lease, target, b"mine", 60_000)
    assert await link.client.get(target) == b"mine"


async def test_every_acquisition_gets_a_larger_fence(open_link: OpenLink) -> None:
    link = await open_link()
    locks = RedisLocks(link)
    name = link.key("lock", "fences")
    fences = []
    for _ in range(3):
        async with locks.hold(name) as lease:
            assert lease is not None
            fences.append(lease.fence)
    assert fences == [fences[0], fences[0] + 1, fences[0] + 2]
    assert await link.client.get(name) is None  # released
