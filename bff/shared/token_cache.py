"""The token cache shared by every process and instance: Redis, with memory in front.

:class:`RedisTokenCache` fills :class:`bff.broker.cache.TokenCache`:

- **Memory in front.** A valid token this process holds is served without a Redis
  round trip; a miss reads Redis. The task holding :meth:`lock` reads Redis, so the
  broker's re-read after acquiring sees what another instance wrote meanwhile
  (refresh-ahead then adopts that token instead of calling the vendor); requests
  arriving during that renewal keep being served the valid token from memory. A read
  that a write of this process overtook never puts the older token back in memory.
- **Encrypted and bound.** Each value is sealed with :class:`bff.crypto.SecretBox`
  (``BFF_ENCRYPTION_KEYS``; older keys still decrypt) together with its key
  (connection, tenant, sub-tenant): a value copied to another key is refused, read as
  absent. Its Redis TTL is the token's expiry.
- **Single-flight across instances.** :meth:`lock` takes this process's per-key lock,
  then the key's :class:`bff.shared.lock.RedisLocks` lock (renewed lease, fencing
  value); ``set`` inside it is a fenced write, so a holder whose lease lapsed cannot
  overwrite a newer token. Waiters elsewhere wake on the release message and re-read.
- **Purges reach everyone.** ``purge`` deletes the tokens in Redis, frees their locks
  and advances their fences (a call still in flight anywhere cannot write its token
  back), and broadcasts, so every process drops them from memory at once. ``delete``
  broadcasts the same way for one key.
- **Degraded.** While Redis is unreachable (:attr:`RedisLink.healthy` false) the cache
  is this process's memory and locks only: valid tokens keep being served, one call
  per key per process. Purges made meanwhile are replayed when Redis returns; and
  since this process missed the others' purges meanwhile, it then forgets what it
  holds in memory and re-reads Redis (a token only it held costs one vendor call).

Redis keys: ``{prefix}:tok:{connection}:{tenant}:{sub-tenant}:{token|lock|lock:fence}``,
each id percent-encoded, so no id can reach into another's key or glob.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import anyio
from redis.exceptions import WatchError

from bff.broker.cache import matches
from bff.broker.scope import TokenScope, VendorToken
from bff.clock import Clock
from bff.crypto import SecretBox
from bff.errors import SecretDecryptionError
from bff.shared.lock import LEASE, Lease, RedisLocks
from bff.shared.redis_link import FAILED, RedisLink

logger = logging.getLogger(__name__)

CHANNEL = "tokens"
_SCAN_BATCH = 500

ConnectionCallback = Callable[[str], Awaitable[None]]
_Purge = tuple[str, str | None, str | None]


class RedisTokenCache:
    def __init__(
        self,
        link: RedisLink,
        box: SecretBox,
        clock: Clock,
        *,
        locks: RedisLocks | None = None,
        lease: float = LEASE,
    ) -> None:
        self._link = link
        self._box = box
        self._clock = clock
        self.locks = locks or RedisLocks(link, lease=lease)
        self._tokens: dict[TokenScope, VendorToken] = {}
        self._local: dict[TokenScope, anyio.Lock] = {}
        # Keys whose shared lock this process holds, with the lease (for fenced writes)
        # and the task holding it: only its reads go to Redis (the re-read after waiting).
        self._held: dict[TokenScope, Lease] = {}
        self._holders: dict[TokenScope, asyncio.Task[Any] | None] = {}
        # Moves on every purge: a Redis read that a purge overtook is not kept in memory.
        self._generation = 0
        # Purges made while degraded, replayed on Redis when it returns.
        self._pending: list[_Purge] = []
        self._listeners: list[ConnectionCallback] = []
        self._origin = secrets.token_hex(8)
        link.subscribe(CHANNEL, self._receive)
        link.on_reconnect(self._rejoined)

    # -- TokenCache -------------------------------------------------------------------------

    async def get(self, scope: TokenScope) -> VendorToken | None:
        now = self._clock.now()
        token = self._tokens.get(scope)
        if token is not None and token.expires_at <= now:
            del self._tokens[scope]
            token = None
        holding = scope in self._held and self._holders.get(scope) is asyncio.current_task()
        if (token is not None and not holding) or not self._link.healthy:
            return token
        generation = self._generation
        try:
            raw = await self._link.client.get(self._key(scope, "token"))
        except FAILED as error:
            self._link.failed(error)
            return token
        if generation != self._generation:
            return None  # purged meanwhile: what was read may be gone
        shared = self._decode(scope, raw) if raw is not None else None
        # Memory as it is now: a write of this process may have landed during the read.
        token = self._tokens.get(scope)
        if token is not None and token.expires_at <= now:
            token = None
        if shared is None or shared.expires_at <= now:
            return token
        if token is not None and token.expires_at > shared.expires_at:
            return token  # ours is newer (just written, or obtained while Redis was away)
        self._tokens[scope] = shared
        return shared

    async def set(self, scope: TokenScope, token: VendorToken) -> None:
        ttl = int((token.expires_at - self._clock.now()).total_seconds() * 1000)
        if ttl <= 0:
            return
        if not self._link.healthy:
            self._tokens[scope] = token
            return
        lease = self._held.get(scope)
        key = self._key(scope, "token")
        value = self._encode(scope, token)
        generation = self._generation
        try:
            if lease is None:
                # Not under the shared lock (taken while degraded): never replace a token.
                written = bool(await self._link.client.set(key, value, px=ttl, nx=True))
            else:
                written = await self.locks.fenced_set(lease, key, value, ttl)
        except FAILED as error:
            self._link.failed(error)
            written = True
        if written and generation == self._generation:
            self._tokens[scope] = token
        elif not written:
            logger.info(
                "vendor connection %s: another instance's token for the key is in Redis "
                "(written under a later lock, or before this unlocked write); this one is "
                "not kept",
                scope.connection_id,
            )

    async def delete(self, scope: TokenScope, token: VendorToken | None = None) -> bool:
        dropped = False
        if token is None or self._tokens.get(scope) == token:
            dropped = self._tokens.pop(scope, None) is not None
        if not self._link.healthy:
            return dropped
        key = self._key(scope, "token")
        try:
            if token is None:
                dropped = bool(await self._link.client.delete(key)) or dropped
            else:
                dropped = await self._delete_if(scope, key, token) or dropped
            await self._announce("drop", list(scope))
        except FAILED as error:
            self._link.failed(error)
        return dropped

    async def purge(
        self,
        connection_id: str,
        tenant_id: str | None = None,
        sub_tenant_id: str | None = None,
        *,
        everywhere: bool = True,
    ) -> int:
        purged = self._forget(connection_id, tenant_id, sub_tenant_id)
        if not everywhere:
            return len(purged)
        if not self._link.healthy:
            self._pending.append((connection_id, tenant_id, sub_tenant_id))
            return len(purged)
        try:
            purged |= await self._purge_shared(connection_id, tenant_id, sub_tenant_id)
            await self._announce("purge", [connection_id, tenant_id, sub_tenant_id])
        except FAILED as error:
            self._link.failed(error)
            self._pending.append((connection_id, tenant_id, sub_tenant_id))
        return len(purged)

    def lock(self, scope: TokenScope) -> AbstractAsyncContextManager[None]:
        return self._locked(scope)

    @property
    def shared(self) -> bool:
        return True

    async def announce_connection(self, connection_id: str) -> None:
        await self._announce("connection", [connection_id, None, None])

    def on_connection_changed(self, callback: ConnectionCallback) -> None:
        self._listeners.append(callback)

    async def aclose(self) -> None:
        self._tokens.clear()

    # -- the lock -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, scope: TokenScope) -> AsyncIterator[None]:
        local = self._local.setdefault(scope, anyio.Lock())
        try:
            async with local, self.locks.hold(self._key(scope, "lock")) as lease:
                if lease is not None:
                    self._held[scope] = lease
                    self._holders[scope] = asyncio.current_task()
                try:
                    yield
                finally:
                    if lease is not None and self._held.get(scope) is lease:
                        del self._held[scope]
                        del self._holders[scope]
        finally:
            idle = not local.locked() and local.statistics().tasks_waiting == 0
            if idle and self._local.get(scope) is local:
                del self._local[scope]

    # -- Redis -------------------------------------------------------------------------------

    def _key(self, scope: TokenScope, kind: str) -> str:
        return self._link.key("tok", *(quote(part, safe="") for part in scope), kind)

    def _pattern(self, connection_id: str, tenant_id: str | None, sub_tenant_id: str | None) -> str:
        parts = [_glob_escape(self._link.key("tok")), quote(connection_id, safe="")]
        parts.append("*" if tenant_id is None else quote(tenant_id, safe=""))
        if sub_tenant_id is not None:
            parts.append(quote(sub_tenant_id, safe=""))
        return ":".join(parts) + ":*"

    def _scope_of(self, key: bytes) -> tuple[TokenScope, str] | None:
        head = self._link.key("tok") + ":"
        text = key.decode()
        if not text.startswith(head):
            return None
        parts = text[len(head) :].split(":")
        if len(parts) < 4:
            return None
        return TokenScope(*(unquote(part) for part in parts[:3])), ":".join(parts[3:])

    async def _purge_shared(
        self, connection_id: str, tenant_id: str | None, sub_tenant_id: str | None
    ) -> builtins.set[TokenScope]:
        tokens: dict[TokenScope, str] = {}
        lock_names: list[str] = []
        fenced: list[TokenScope] = []
        pattern = self._pattern(connection_id, tenant_id, sub_tenant_id)
        async for key in self._link.client.scan_iter(match=pattern, count=_SCAN_BATCH):
            found = self._scope_of(key)
            if found is None or not matches(found[0], connection_id, tenant_id, sub_tenant_id):
                continue
            scope, kind = found
            if kind == "token":
                tokens[scope] = key.decode()
            elif kind == "lock":
                lock_names.append(key.decode())
            elif kind == "lock:fence":
                fenced.append(scope)
        fences = [RedisLocks.fence_key(self._key(scope, "lock")) for scope in fenced]
        # Fences first: a holder still working can no longer write once they moved.
        await self.locks.reset(lock_names, fences)
        # The token keys of every fenced scope too, in case a holder wrote since the scan.
        doomed = {**{scope: self._key(scope, "token") for scope in fenced}, **tokens}
        if doomed:
            await self._link.client.delete(*doomed.values())
        return set(tokens)

    async def _delete_if(self, scope: TokenScope, key: str, token: VendorToken) -> bool:
        async with self._link.client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            raw = await pipe.get(key)
            if raw is None or self._decode(scope, raw) != token:
                await pipe.unwatch()  # type: ignore[no-untyped-call]
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(key)
            try:
                await pipe.execute()
            except WatchError:
                return False  # replaced meanwhile: the new one stays
        return True

    def _encode(self, scope: TokenScope, token: VendorToken) -> bytes:
        fields = {
            "value": token.value,
            "expires_at": token.expires_at.isoformat(),
            "obtained_at": token.obtained_at.isoformat(),
            "authorization": token.authorization,
            "refresh_token": token.refresh_token,
            "refresh_until": _iso(token.refresh_until),
        }
        sealed = self._box.encrypt(json.dumps(fields, separators=(",", ":")), _context(scope))
        return sealed.encode("ascii")

    def _decode(self, scope: TokenScope, raw: bytes | str) -> VendorToken | None:
        try:
            fields: dict[str, Any] = json.loads(self._box.decrypt(_text(raw), _context(scope)))
            refresh_until = fields.get("refresh_until")
            return VendorToken(
                fields["value"],
                datetime.fromisoformat(fields["expires_at"]),
                datetime.fromisoformat(fields["obtained_at"]),
                authorization=fields["authorization"],
                refresh_token=fields.get("refresh_token"),
                refresh_until=datetime.fromisoformat(refresh_until) if refresh_until else None,
            )
        except (SecretDecryptionError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "vendor connection %s: a token in Redis could not be read (%s); ignored",
                scope.connection_id,
                type(exc).__name__,
            )
            return None

    # -- messages ---------------------------------------------------------------------------

    async def _announce(self, op: str, key: list[str | None]) -> bool:
        message = {"from": self._origin, "op": op, "key": key}
        return await self._link.publish(CHANNEL, json.dumps(message).encode())

    async def _receive(self, data: bytes) -> None:
        message = json.loads(data)
        if message.get("from") == self._origin:
            return
        op = message.get("op")
        connection_id, tenant_id, sub_tenant_id = message["key"]
        if op == "purge":
            self._forget(connection_id, tenant_id, sub_tenant_id)
        elif op == "drop":
            self._forget(connection_id, tenant_id, sub_tenant_id, locks=False)
        elif op == "connection":
            for callback in self._listeners:
                await callback(connection_id)

    def _forget(
        self,
        connection_id: str,
        tenant_id: str | None,
        sub_tenant_id: str | None,
        *,
        locks: bool = True,
    ) -> builtins.set[TokenScope]:
        """Drop matching tokens from memory and (``locks``) their local locks: a
        discarded holder keeps its own lock object, newcomers get a new one."""
        self._generation += 1
        doomed = {s for s in self._tokens if matches(s, connection_id, tenant_id, sub_tenant_id)}
        for scope in doomed:
            del self._tokens[scope]
        if not locks:
            return doomed
        for scope in [
            s for s in self._local if matches(s, connection_id, tenant_id, sub_tenant_id)
        ]:
            del self._local[scope]
        return doomed

    async def _rejoined(self) -> None:
        pending, self._pending = self._pending, []
        for connection_id, tenant_id, sub_tenant_id in pending:
            try:
                await self._purge_shared(connection_id, tenant_id, sub_tenant_id)
                sent = await self._announce("purge", [connection_id, tenant_id, sub_tenant_id])
            except FAILED as error:
                self._link.failed(error)
                sent = False
            if not sent:  # lost again: replayed next time
                self._pending.append((connection_id, tenant_id, sub_tenant_id))
        # Purges sent while we were away never reached us: trust Redis, not memory.
        self._generation += 1
        self._tokens.clear()


def _context(scope: TokenScope) -> str:
    return "vendor-token:" + json.dumps(list(scope), separators=(",", ":"))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(raw: bytes | str) -> str:
    return raw.decode("ascii") if isinstance(raw, bytes) else raw
