"""RedisTokenCache: encrypted and bound values, purges that reach every process."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
from redis.exceptions import ResponseError

from bff.broker.scope import TokenScope, VendorToken
from bff.clock import ManualClock
from bff.crypto import SecretBox
from bff.shared.lock import RedisLocks
from bff.shared.redis_link import RedisLink
from bff.shared.token_cache import CHANNEL, RedisTokenCache
from tests.conftest import random_key
from tests.shared.conftest import OpenLink

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

A = TokenScope("default", "acme", "emea")
B = TokenScope("default", "acme", "apac")
WIDE = TokenScope("other", "", "")


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([random_key()])


def token(clock: ManualClock, value: str, seconds: float = 3600) -> VendorToken:
    now = clock.now()
    return VendorToken(
        value,
        now + timedelta(seconds=seconds),
        now,
        refresh_token=f"refresh-{value}",
        refresh_until=now + timedelta(days=7),
    )


async def store(cache: RedisTokenCache, scope: TokenScope, value: VendorToken) -> None:
    async with cache.lock(scope):
        await cache.set(scope, value)


class Heard:
    """Set once the link delivered a token message (after the cache's own handler)."""

    def __init__(self, link: RedisLink) -> None:
        self.event = anyio.Event()
        link.subscribe(CHANNEL, self._heard)

    async def _heard(self, message: bytes) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = anyio.Event()


async def test_a_token_written_by_one_instance_is_read_by_another_exactly(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    first = RedisTokenCache(await open_link(), box, clock)
    second = RedisTokenCache(await open_link(), box, clock)
    written = token(clock, "t1")
    await store(first, A, written)
    assert await second.get(A) == written  # every field, the refresh token included
    assert await second.get(B) is None


async def test_the_redis_value_is_encrypted_and_lives_as_long_as_the_token(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    link = await open_link()
    cache = RedisTokenCache(link, box, clock)
    await store(cache, A, token(clock, "plain-value", seconds=100))
    [key] = [k async for k in link.client.scan_iter(match=f"{link.prefix}:tok:*:token")]
    raw = await link.client.get(key)
    assert isinstance(raw, bytes)
    assert b"plain-value" not in raw and b"refresh-plain-value" not in raw
    assert 0 < await link.client.pttl(key) <= 100_000


async def test_a_value_copied_to_another_key_is_refused(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    link = await open_link()
    first = RedisTokenCache(link, box, clock)
    await store(first, A, token(clock, "for-emea"))
    copied = await link.client.get(first._key(A, "token"))
    assert isinstance(copied, bytes)
    await link.client.set(first._key(B, "token"), copied)
    reader = RedisTokenCache(await open_link(), box, clock)
    assert await reader.get(B) is None
    assert (await reader.get(A) or token(clock, "none")).value == "for-emea"


async def test_a_value_sealed_with_unknown_keys_is_refused(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    await store(RedisTokenCache(await open_link(), box, clock), A, token(clock, "t1"))
    stranger = RedisTokenCache(await open_link(), SecretBox([random_key()]), clock)
    assert await stranger.get(A) is None


async def test_an_older_key_still_decrypts_after_rotation(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    old_key = random_key()
    written = token(clock, "t1")
    await store(RedisTokenCache(await open_link(), SecretBox([old_key]), clock), A, written)
    rotated = RedisTokenCache(await open_link(), SecretBox([random_key(), old_key]), clock)
    assert await rotated.get(A) == written


async def test_a_purge_on_one_instance_drops_the_token_from_the_others_memory(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    first = RedisTokenCache(await open_link(), box, clock)
    other_link = await open_link()
    second = RedisTokenCache(other_link, box, clock)
    heard = Heard(other_link)
    await other_link.listening()
    await store(first, A, token(clock, "a"))
    await store(first, B, token(clock, "b"))
    await store(first, WIDE, token(clock, "wide"))
    for scope in (A, B, WIDE):
        assert await second.get(scope) is not None  # now in its memory
    assert await first.purge("default", "acme", "emea") == 1
    await heard.wait()
    assert await second.get(A) is None
    assert await second.get(B) is not None
    assert await first.purge("default") == 1
    await heard.wait()
    assert await second.get(B) is None
    assert await second.get(WIDE) is not None  # another connection


async def test_a_purge_frees_the_lock_and_refuses_the_discarded_holders_token(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    holder_link = await open_link()
    holder = RedisTokenCache(holder_link, box, clock)
    purger = RedisTokenCache(await open_link(), box, clock)
    heard = Heard(holder_link)
    await holder_link.listening()
    holding, purged = anyio.Event(), anyio.Event()

    async def old_call() -> None:
        async with holder.lock(A):
            holding.set()
            await purged.wait()
            await holder.set(A, token(clock, "old-credentials"))

    async with anyio.create_task_group() as group:
        group.start_soon(old_call)
        await holding.wait()
        await purger.purge("default")
        async with purger.lock(A):  # at once: the old holder's lock is gone
            await purger.set(A, token(clock, "new-credentials"))
        purged.set()
    reader = RedisTokenCache(await open_link(), box, clock)
    assert (await reader.get(A) or token(clock, "none")).value == "new-credentials"
    await heard.wait()  # the purge, as the holder's process hears it
    assert (await holder.get(A) or token(clock, "none")).value == "new-credentials"


async def test_a_holder_whose_lease_lapsed_cannot_overwrite_the_newer_token(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    link = await open_link()
    slow = RedisTokenCache(link, box, clock, locks=RedisLocks(link, lease=0.05, renew_every=3600))
    fast = RedisTokenCache(await open_link(), box, clock)
    newer_written = anyio.Event()

    async def newer() -> None:
        async with fast.lock(A):
            assert await fast.get(A) is None
            await fast.set(A, token(clock, "newer"))
        newer_written.set()

    async with anyio.create_task_group() as group, slow.lock(A):
        group.start_soon(newer)
        await newer_written.wait()
        await slow.set(A, token(clock, "older"))
        # Read inside the lock: from Redis, where the newer one stayed.
        assert (await slow.get(A) or token(clock, "none")).value == "newer"
    assert (await fast.get(A) or token(clock, "none")).value == "newer"


async def test_deleting_a_given_token_spares_a_newer_one(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    first = RedisTokenCache(await open_link(), box, clock)
    second = RedisTokenCache(await open_link(), box, clock)
    refused, replacement = token(clock, "refused"), token(clock, "replacement")
    await store(first, WIDE, refused)
    await store(second, WIDE, replacement)  # another instance replaced it meanwhile
    assert await first.delete(WIDE, refused)  # from its memory only
    assert await first.get(WIDE) == replacement
    assert not await second.delete(WIDE, refused)  # neither its memory nor Redis hold it
    assert await second.delete(WIDE, replacement)
    assert await RedisTokenCache(await open_link(), box, clock).get(WIDE) is None


async def test_a_purge_made_while_degraded_is_replayed_when_redis_returns(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    cut_link, other_link = await open_link(), await open_link()
    cut = RedisTokenCache(cut_link, box, clock)
    other = RedisTokenCache(other_link, box, clock)
    heard = Heard(other_link)
    await other_link.listening()
    await store(other, A, token(clock, "a"))
    assert await cut.get(A) is not None
    back = anyio.Event()

    async def rejoined() -> None:
        back.set()

    cut_link.on_reconnect(rejoined)  # after the cache's own callback
    cut_link.lost(ConnectionError("cut"))
    assert await cut.purge("default") == 1  # degraded: this process only, for now
    assert await other.get(A) is not None
    with anyio.fail_after(10):
        await back.wait()
        await heard.wait()
    assert await other.get(A) is None
    assert await RedisTokenCache(await open_link(), box, clock).get(A) is None


async def test_a_refusing_redis_falls_back_on_memory_without_degrading(
    open_link: OpenLink, box: SecretBox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await open_link()
    cache = RedisTokenCache(link, box, clock)

    async def refuse(*args: object, **kwargs: object) -> object:
        raise ResponseError("OOM command not allowed when used memory > 'maxmemory'")

    monkeypatch.setattr(link.client, "get", refuse)
    monkeypatch.setattr(cache.locks, "_acquire", refuse)
    written = token(clock, "kept-in-memory")
    async with cache.lock(A):  # this process's lock only
        assert await cache.get(A) is None
        await cache.set(A, written)
    assert await cache.get(A) == written
    assert link.healthy


async def test_a_read_overtaken_by_this_processs_write_does_not_bring_the_old_token_back(
    open_link: OpenLink, box: SecretBox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read of Redis answered before this process's renewal was written, but resumed
    # after it, must not put the older token back in memory.
    first = RedisTokenCache(await open_link(), box, clock)
    link = await open_link()
    second = RedisTokenCache(link, box, clock)
    old, new = token(clock, "t1", seconds=100), token(clock, "t2", seconds=200)
    await store(first, A, old)
    read = link.client.get
    answered, resume = anyio.Event(), anyio.Event()

    async def slow_get(name: str) -> bytes | str | None:
        raw: bytes | str | None = await read(name)
        answered.set()
        await resume.wait()
        return raw

    got: list[VendorToken | None] = []

    async def reader() -> None:
        got.append(await second.get(A))  # nothing in memory yet: reads Redis

    async with second.lock(A), anyio.create_task_group() as group:
        monkeypatch.setattr(link.client, "get", slow_get)
        group.start_soon(reader)
        await answered.wait()  # Redis answered with the old token
        monkeypatch.setattr(link.client, "get", read)
        await second.set(A, new)
        resume.set()
    assert got == [new]
    assert await second.get(A) == new  # from memory, outside the lock


async def test_while_a_renewal_holds_the_lock_other_reads_are_served_from_memory(
    open_link: OpenLink, box: SecretBox, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the holder's re-read goes to Redis: requests arriving during the renewal
    # keep getting the valid token from memory, without a round trip each.
    link = await open_link()
    cache = RedisTokenCache(link, box, clock)
    theirs = token(clock, "t1")
    await store(cache, A, theirs)
    reads: list[str] = []
    read = link.client.get

    async def counted(name: str) -> bytes | str | None:
        reads.append(name)
        raw: bytes | str | None = await read(name)
        return raw

    monkeypatch.setattr(link.client, "get", counted)
    got: list[VendorToken | None] = []

    async def request() -> None:
        got.append(await cache.get(A))

    async with cache.lock(A):
        assert await cache.get(A) == theirs  # the holder: from Redis
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(request)
    assert got == 3 * [theirs]
    assert reads == [cache._key(A, "token")]


async def test_a_write_without_the_lock_keeps_the_token_already_in_redis_everywhere(
    open_link: OpenLink, box: SecretBox, clock: ManualClock
) -> None:
    # A write whose lock was taken while degraded: Redis keeps the other instance's
    # token, and so does this process's memory, or it would serve (and renew) its own.
    first = RedisTokenCache(await open_link(), box, clock)
    second = RedisTokenCache(await open_link(), box, clock)
    theirs = token(clock, "t1")
    await store(first, A, theirs)
    await second.set(A, token(clock, "t2", seconds=7200))
    assert await second.get(A) == theirs
    assert await first.get(A) == theirs
