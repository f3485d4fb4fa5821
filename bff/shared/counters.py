"""Sliding-window rate counters: in Redis, shared by every process, or in process memory.

A limit is a :class:`Window` (at most ``limit`` events per key within ``seconds``).
:meth:`Counters.take` checks one event against several windows and records it in all
of them in one atomic step, or in none when any window is full (the answer is then the
seconds to wait), so concurrent requests cannot all pass a check none of them has
been counted against yet. :meth:`Counters.release` later takes the event back out of
some windows (a sign-in that succeeded is no failure) and can clear a key whole.

With a :class:`~bff.shared.redis_link.RedisLink` the windows are Redis sorted sets, one
per key (member: the event's random id, score: its time), checked and written by one
Lua script, so every process and instance counts against the same limit. Their time
is the injected clock's wall time, as for session timeouts: processes share no
monotonic clock. A key expires with its window. Keys are SHA-256 digests, so no
e-mail address or client address is stored in Redis.

While Redis is unreachable (degraded), and without a link, the windows live in this
process's memory on its monotonic clock (setting the wall clock neither lifts nor
extends a limit), at most :data:`MAX_KEYS` keys per window: each process then enforces
every limit on its own share of the traffic. Those counts are not merged into Redis
when it returns; an event is released where it was counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
from collections import OrderedDict, deque
from collections.abc import Collection, Sequence

from bff.clock import Clock
from bff.shared.redis_link import UNREACHABLE, RedisLink

MAX_KEYS = 100_000

# KEYS: one sorted set per window. ARGV: now, the event's member, then for each key its
# limit and window in seconds. Returns "0" once recorded everywhere, else the seconds
# until every full window has room (a string: Lua numbers would be truncated).
_TAKE = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local left = tonumber(oldest[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 + 2 * i]) * 1000))
end
return '0'
"""


@dataclasses.dataclass(frozen=True)
class Window:
    """At most ``limit`` events per key within ``seconds``; ``name`` tells windows apart."""

    name: str
    limit: int
    seconds: float


# One window and the key counted in it (an e-mail address, a client address, an app id).
Hit = tuple[Window, str]


@dataclasses.dataclass(frozen=True)
class Taken:
    """One event, recorded by :meth:`Counters.take` under each of ``hits``."""

    hits: tuple[Hit, ...]
    # Where it was counted: its Redis member, or None in process (at monotonic ``at``).
    member: str | None
    at: float


class SlidingWindowLimiter:
    """In process: at most ``limit`` recorded events per key within ``window`` seconds
    (on the clock's monotonic time, so setting the wall clock neither lifts nor extends
    a limit)."""

    def __init__(self, clock: Clock, *, limit: int, window: float) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may record again, or None when it may now."""
        events = self._prune(key)
        if events is None or len(events) < self.limit:
            return None
        wait = events[0] + self.window - self._clock.monotonic()
        return max(1, math.ceil(wait))

    def record(self, key: str, at: float | None = None) -> float:
        """Record an event now (or at monotonic ``at``); returns its time, to
        :meth:`discard` it later."""
        now = self._clock.monotonic() if at is None else at
        events = self._prune(key)
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)
        return now

    def discard(self, key: str, at: float) -> None:
        """Forget one event recorded at ``at`` (nothing if it has expired or was cleared)."""
        events = self._events.get(key)
        if events is None:
            return
        try:
            events.remove(at)
        except ValueError:
            return
        if not events:
            del self._events[key]

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def __len__(self) -> int:
        return len(self._events)

    def _prune(self, key: str) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = self._clock.monotonic() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events


class Counters:
    """Sliding windows in Redis while ``link`` reaches it, else in process memory."""

    def __init__(self, clock: Clock, link: RedisLink | None = None) -> None:
        self._clock = clock
        self._link = link
        self._local: dict[str, SlidingWindowLimiter] = {}
        self._take_script = None if link is None else link.client.register_script(_TAKE)

    async def take(self, hits: Sequence[Hit]) -> Taken | int:
        """Record one event under every hit, or none: then the seconds to wait (≥ 1)."""
        if self._link is not None and self._link.healthy:
            try:
                return await self._take_shared(self._link, hits)
            except UNREACHABLE as error:
                self._link.lost(error)
        return self._take_local(hits)

    async def release(
        self, taken: Taken, windows: Collection[Window], *, clear: Collection[Window] = ()
    ) -> None:
        """Take the event back out of ``windows``, and clear its key in ``clear`` whole
        (every event, other requests' too), where it was counted."""
        if taken.member is None:
            for window, key in taken.hits:
                if window in clear:
                    self._window(window).clear(key)
                elif window in windows:
                    self._window(window).discard(key, taken.at)
            return
        assert self._link is not None
        if not self._link.healthy:
            return  # it stays counted there, as a failure would
        try:
            async with self._link.client.pipeline(transaction=True) as pipe:
                for window, key in taken.hits:
                    if window in clear:
                        pipe.delete(self._key(self._link, window, key))
                    elif window in windows:
                        pipe.zrem(self._key(self._link, window, key), taken.member)
                await pipe.execute()
        except UNREACHABLE as error:
            self._link.lost(error)

    async def _take_shared(self, link: RedisLink, hits: Sequence[Hit]) -> Taken | int:
        assert self._take_script is not None
        member = secrets.token_hex(12)
        args: list[str | int | float] = [repr(self._clock.now().timestamp()), member]
        for window, _ in hits:
            args += [window.limit, repr(float(window.seconds))]
        answer = await self._take_script(
            keys=[self._key(link, window, key) for window, key in hits], args=args
        )
        wait = float(answer)
        if wait > 0:
            return max(1, math.ceil(wait))
        return Taken(tuple(hits), member, self._clock.monotonic())

    def _take_local(self, hits: Sequence[Hit]) -> Taken | int:
        waits = [
            wait
            for window, key in hits
            if (wait := self._window(window).retry_after(key)) is not None
        ]
        if waits:
            return max(waits)
        at = self._clock.monotonic()
        for window, key in hits:
            self._window(window).record(key, at)
        return Taken(tuple(hits), None, at)

    def _window(self, window: Window) -> SlidingWindowLimiter:
        found = self._local.get(window.name)
        if found is None:
            found = self._local[window.name] = SlidingWindowLimiter(
                self._clock, limit=window.limit, window=window.seconds
            )
        return found

    @staticmethod
    def _key(link: RedisLink, window: Window, key: str) -> str:
        digest = hashlib.sha256(key.encode(errors="surrogatepass")).hexdigest()[:32]
        return link.key("limit", window.name, digest)
