"""This process's link to Redis: one connection pool, its health, and its messages.

Everything shared across processes and instances (the token cache and its locks,
revocations, rate limits) goes through one :class:`RedisLink`. When Redis cannot
be reached, the link is *degraded*: callers check :attr:`RedisLink.healthy` and
fall back to what this process holds in memory, instead of each request waiting
out a timeout; an operation that fails reports it with :meth:`RedisLink.lost`.
A background task pings Redis with backoff and, once it answers, the link is
connected again: subscriptions are renewed and the ``on_reconnect`` callbacks run
(messages sent meanwhile were lost, so caches fill the gap themselves). Each change
of state is logged once and shown in ``bff_redis_connected``.

Messages are published on channels named :meth:`RedisLink.channel`; a handler
registered with :meth:`RedisLink.subscribe` receives every message of its
channel, including the ones this process published. A handler may be registered
after ``start`` (the listener subscribes again with the new channel);
:meth:`RedisLink.listening` waits until every registered channel is subscribed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import anyio
import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What counts as "Redis is unreachable" (anything else is a bug, not an outage).
UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
# What an operation that can fall back on memory catches: an outage, or a refusal
# (out of memory, a read-only replica after a failover) that :meth:`RedisLink.failed`
# logs without degrading.
FAILED: tuple[type[BaseException], ...] = (*UNREACHABLE, RedisError)

MessageHandler = Callable[[bytes], Awaitable[None]]
State = Literal["connected", "degraded"]

# Short: a lost Redis must degrade requests quickly, not hold them for seconds.
SOCKET_TIMEOUT = 1.0
RETRY_FIRST = 0.25
RETRY_MAX = 5.0
# The namespace of every key and channel of a deployment (tests give each test its own).
PREFIX = "bff"


class RedisLink:
    def __init__(
        self,
        url: str,
        registry: CollectorRegistry | None = None,
        *,
        prefix: str = PREFIX,
        socket_timeout: float = SOCKET_TIMEOUT,
    ) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=15,
        )
        self.prefix = prefix
        self._state: State = "degraded"
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._wake = anyio.Event()
        self._connected = anyio.Event()
        self._state_changed = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        # The listener, cancelled and started again to subscribe to a new channel.
        self._listening: anyio.CancelScope | None = None
        # The channels the listener is subscribed to now (empty while disconnected).
        self._subscribed: frozenset[str] = frozenset()
        self._subscription_changed = anyio.Event()
        self._gauge = Gauge(
            "bff_redis_connected",
            "1 while this process reaches Redis, 0 while degraded (serving from memory).",
            registry=registry,
        )
        self._gauge.set(0)

    # -- keys and channels --------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace, e.g. ``bff:token:…``."""
        return ":".join((self.prefix, *parts))

    def channel(self, name: str) -> str:
        return self.key("channel", name)

    # -- health -------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._state == "connected"

    @property
    def state(self) -> State:
        return self._state

    async def wait_until(self, state: State) -> None:
        """Wait until the link is in ``state`` (for tests and start-up checks)."""
        while self._state != state:
            await self._state_changed.wait()

    def lost(self, error: BaseException) -> None:
        """An operation could not reach Redis: degrade (logged once) and start retrying."""
        if self._state == "connected":
            self._set_state("degraded", error)
        self._wake.set()

    def failed(self, error: BaseException) -> None:
        """An operation caught one of :data:`FAILED`: an outage degrades the link; a
        refusal is logged (that operation falls back on memory) and changes nothing."""
        if isinstance(error, UNREACHABLE):
            self.lost(error)
        else:
            logger.warning("Redis refused an operation; served from memory: %s", error)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` each time the link is connected again after being degraded."""
        self._on_reconnect.append(callback)

    # -- messages -------------------------------------------------------------------------

    def subscribe(self, name: str, handler: MessageHandler) -> None:
        """Call ``handler`` with each message on channel ``name``. After ``start``, a new
        channel makes the listener subscribe again (a message sent meanwhile may be
        missed: register at start-up, before anything is sent)."""
        channel = self.channel(name)
        new = channel not in self._handlers
        self._handlers.setdefault(channel, []).append(handler)
        if new and self._task_group is not None:
            self._start_listening()

    async def listening(self) -> None:
        """Wait until every registered channel is subscribed (so a message sent from now
        on reaches this process)."""
        while not set(self._handlers) <= self._subscribed:
            await self._subscription_changed.wait()

    async def publish(self, name: str, message: bytes) -> bool:
        """Send ``message`` to every process; False when it could not be sent (degraded)."""
        if not self.healthy:
            return False
        try:
            await self.client.publish(self.channel(name), message)
        except UNREACHABLE as error:
            self.lost(error)
            return False
        return True

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Connect (or start degraded, if Redis is down) and keep the link alive."""
        self._task_group = task_group
        await self._try_connect(first=True)
        task_group.start_soon(self._keep_alive)
        if self._handlers:
            self._start_listening()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _try_connect(self, *, first: bool = False) -> bool:
        try:
            if not first:
                # Idle pooled connections from before the outage are dead: drop them, or
                # the first operations after it would fail and degrade the link again.
                # (Not those in use: the listener's would be cut, degrading it too.)
                await self.client.connection_pool.disconnect(inuse_connections=False)
            await self.client.ping()
        except UNREACHABLE as error:
            if first:
                logger.warning("Redis unreachable at start-up; serving from memory: %s", error)
            return False
        if first:
            logger.info("connected to Redis")
        self._set_state("connected", quiet=first)
        if not first:
            for callback in self._on_reconnect:
                try:
                    await callback()
                except Exception:
                    logger.exception("a Redis reconnect callback failed")
        return True

    async def _keep_alive(self) -> None:
        delay = RETRY_FIRST
        while True:
            if self.healthy:
                await self._wake.wait()
                self._wake = anyio.Event()
                delay = RETRY_FIRST
                continue
            if await self._try_connect():
                continue
            await anyio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _start_listening(self) -> None:
        assert self._task_group is not None
        if self._listening is not None:
            self._listening.cancel()
        scope = self._listening = anyio.CancelScope()

        async def listen() -> None:
            with scope:
                await self._listen()

        self._task_group.start_soon(listen)

    async def _listen(self) -> None:
        """Deliver messages; after a lost connection, subscribe again once Redis is back."""
        while True:
            await self._connected.wait()
            await self._listen_once()
            self._mark_subscribed(frozenset())

    async def _listen_once(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            channels = frozenset(self._handlers)
            await pubsub.subscribe(*channels)
            self._mark_subscribed(channels)
            async for message in pubsub.listen():
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else channel
                # Shielded: subscribing to a new channel restarts the listener, which
                # must not cut a handler short (a reload half done).
                with anyio.CancelScope(shield=True):
                    for handler in list(self._handlers.get(name, ())):
                        try:
                            await handler(message["data"])
                        except Exception:
                            logger.exception("a Redis message handler failed on %s", name)
        except UNREACHABLE as error:
            self.lost(error)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(*UNREACHABLE):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _mark_subscribed(self, channels: frozenset[str]) -> None:
        self._subscribed = channels
        self._subscription_changed.set()
        self._subscription_changed = anyio.Event()

    def _set_state(
        self, state: State, error: BaseException | None = None, *, quiet: bool = False
    ) -> None:
        if state == self._state:
            return
        self._state = state
        self._state_changed.set()
        self._state_changed = anyio.Event()
        self._gauge.set(1 if state == "connected" else 0)
        if state == "connected":
            self._connected.set()
        else:
            self._connected = anyio.Event()
        if state == "degraded":
            logger.warning(
                "Redis unreachable; degraded: serving tokens and sessions from memory: %s", error
            )
        elif not quiet:
            logger.warning("Redis reachable again; shared state resumed")


@contextlib.asynccontextmanager
async def open_link(
    url: str | None, registry: CollectorRegistry
) -> AsyncIterator[RedisLink | None]:
    """The process's link for ``BFF_REDIS_URL`` (None without one), kept alive while open."""
    if url is None:
        yield None
        return
    link = RedisLink(url, registry, prefix=PREFIX)
    try:
        async with anyio.create_task_group() as background:
            await link.start(background)
            yield link
            background.cancel_scope.cancel()
    finally:
        await link.aclose()
