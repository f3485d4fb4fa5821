"""A lock shared by every process and instance, with a renewed lease and a fencing value.

``hold(name)`` waits for the lock and holds it while its body runs:

- Acquired with ``SET lock <random> NX PX lease`` and, in the same script, ``INCR``
  of the name's fence counter: every acquisition gets a larger fencing value.
- While held, a background task renews the lease every ``lease / 3`` (only if the
  lock is still ours), so a slow holder keeps it however long it works; a crashed
  one loses it after at most ``lease``.
- Writes guarded by the lock go through :meth:`RedisLocks.fenced_set`, which writes
  only while the holder's fence is still the latest: a holder whose lease lapsed
  (and whose lock someone else took since) cannot overwrite the newer value.
- Released by compare-and-delete, then announced on a channel: waiters on every
  instance try again at once instead of polling. A waiter never waits longer than
  the lock's remaining lease or ``poll`` before trying again, so a lost message
  costs at most that.

``hold`` yields ``None`` instead of a :class:`Lease` when Redis is unreachable
(degraded): the caller then has only its own process's exclusion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Iterable

import anyio

from bff.shared.redis_link import FAILED, RedisLink

logger = logging.getLogger(__name__)

CHANNEL = "locks"
# Long enough that a renewal (every third of it) survives a slow Redis round trip,
# short enough that a crashed holder's waiters resume within seconds.
LEASE = 10.0
# The longest a waiter sleeps between tries when no release message arrives.
POLL = 1.0
# A fence counter outlives any holder by far; it only has to be larger than any
# fence still in use, and equality is what a write checks.
FENCE_TTL = 24 * 60 * 60.0

# KEYS: lock, fence. ARGV: holder token, lease ms, fence ttl ms.
# Returns the new fence (> 0), or minus the lock's remaining lease in ms.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return fence
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then left = 1 end
return -left
"""
# KEYS: lock. ARGV: holder token, lease ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lock. ARGV: holder token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: target, fence. ARGV: fence, value, ttl ms.
_FENCED_SET = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclasses.dataclass(eq=False)
class Lease:
    """A held lock: its fencing value, and how often its lease was renewed."""

    name: str
    token: bytes = dataclasses.field(repr=False)
    fence: int
    renewals: int = 0
    # The lock was found taken by another holder at a renewal: our lease had lapsed.
    lost: bool = False


class RedisLocks:
    """Locks named by Redis key; ``fence_key(name)`` holds each name's fence counter."""

    def __init__(
        self,
        link: RedisLink,
        *,
        lease: float = LEASE,
        poll: float = POLL,
        renew_every: float | None = None,
    ) -> None:
        self._link = link
        self.lease = lease
        # Tests make it longer than the lease, to have a holder's lease lapse.
        self._renew_every = lease / 3 if renew_every is None else renew_every
        self._poll = poll
        self._acquire = link.client.register_script(_ACQUIRE)
        self._renew = link.client.register_script(_RENEW)
        self._release = link.client.register_script(_RELEASE)
        self._fenced_set = link.client.register_script(_FENCED_SET)
        # Lock names waited for in this process -> set when a release is announced.
        self._released: dict[str, anyio.Event] = {}
        # Set (and replaced) after each renewal of any lease, and each time an acquirer
        # finds a lock taken and starts waiting: what tests wait on instead of the clock.
        self.renewed = anyio.Event()
        self.contended = anyio.Event()
        link.subscribe(CHANNEL, self._on_released)

    @staticmethod
    def fence_key(name: str) -> str:
        return f"{name}:fence"

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Lease | None]:
        """Hold lock ``name`` (a Redis key) for the body; ``None`` while degraded."""
        lease = await self._wait_for(name)
        if lease is None:
            yield None
            return
        renewer = asyncio.ensure_future(self._keep(lease))
        try:
            yield lease
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with anyio.CancelScope(shield=True):
                await self._free(lease)

    async def fenced_set(self, lease: Lease, key: str, value: bytes, ttl_ms: int) -> bool:
        """``SET key value PX ttl_ms`` if ``lease``'s fence is still the latest; raises
        the Redis error when unreachable."""
        written = await self._fenced_set(
            keys=[key, self.fence_key(lease.name)], args=[lease.fence, value, max(1, ttl_ms)]
        )
        return bool(written)

    async def reset(self, names: Iterable[str], fences: Iterable[str]) -> None:
        """Free the locks ``names`` whoever holds them, and advance the ``fences``
        counters, so their holders' writes are refused (a purge discarded their work)."""
        async with self._link.client.pipeline(transaction=True) as pipe:
            for name in names:
                pipe.delete(name)
            for fence in fences:
                pipe.incr(fence)
                pipe.pexpire(fence, int(FENCE_TTL * 1000))
            await pipe.execute()
        for name in names:
            await self._link.publish(CHANNEL, name.encode())

    async def _wait_for(self, name: str) -> Lease | None:
        token = secrets.token_hex(16).encode()
        lease_ms = int(self.lease * 1000)
        while self._link.healthy:
            # Registered before trying, so a release announced in between is not missed.
            released = self._released.setdefault(name, anyio.Event())
            try:
                result = int(
                    await self._acquire(
                        keys=[name, self.fence_key(name)],
                        args=[token, lease_ms, int(FENCE_TTL * 1000)],
                    )
                )
            except FAILED as error:
                self._link.failed(error)
                return None
            if result > 0:
                if self._released.get(name) is released:
                    del self._released[name]
                return Lease(name, token, result)
            self.contended.set()
            self.contended = anyio.Event()
            with anyio.move_on_after(min(-result / 1000, self._poll)):
                await released.wait()
        return None

    async def _keep(self, lease: Lease) -> None:
        lease_ms = int(self.lease * 1000)
        while True:
            await anyio.sleep(self._renew_every)
            try:
                kept = await self._renew(keys=[lease.name], args=[lease.token, lease_ms])
            except FAILED as error:
                self._link.failed(error)
                continue
            if not kept:
                lease.lost = True
                logger.warning(
                    "a lock was lost while held (its lease lapsed, or a purge freed it): %s",
                    lease.name,
                )
                return
            lease.renewals += 1
            self.renewed.set()
            self.renewed = anyio.Event()

    async def _free(self, lease: Lease) -> None:
        try:
            freed = await self._release(keys=[lease.name], args=[lease.token])
        except FAILED as error:
            self._link.failed(error)
            return
        if freed:
            await self._link.publish(CHANNEL, lease.name.encode())

    async def _on_released(self, message: bytes) -> None:
        event = self._released.pop(message.decode(), None)
        if event is not None:
            event.set()
