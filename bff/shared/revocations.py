"""The revocation broadcast: what one process ended, every other process forgets at once.

Sessions and mappings are cached in each process and re-read at most every 15 s
(:mod:`bff.web.auth.sessions`, :mod:`bff.web.auth.access`). A process that revokes
something applies it to its own caches after the database commit, then publishes it
here; every other process drops the entries on receipt, well within a second. A
message is lost while Redis is unreachable (it is not queued): the 15 s revalidation
still bounds the revocation then, and a process whose link comes back drops its
caches whole, since it may have missed messages meanwhile.

Two kinds of message, JSON on one channel:

- **sessions**: the id hashes of sessions deleted (a sign-out, a mapping's sessions
  ended), and for bulk revocations the user (disabled, deleted, demoted) or the
  partner app (revoked, its secret replaced) whose sessions all ended. A receiver
  buries the hashes and evicts every cached session of that user or app, so the
  next request reads the database again.
- **mappings**: users whose mapped pairs changed (a mapping removed, a user
  disabled); a receiver forgets their cached pairs (all users', for a large import).

Personal API keys and partner bearer tokens are not cached: they are checked against
the database on every request, so deleting a key or cutting off a partner app is
honoured by every instance on its next request without a message.

A process ignores its own messages (it has applied them already).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import Callable, Collection, Sequence

import anyio

from bff.shared.redis_link import RedisLink

logger = logging.getLogger(__name__)

CHANNEL = "revocations"
# Beyond this many ids a message names the user or app instead, or means "everyone".
MAX_IDS = 500
# On reconnecting, how long to wait for the subscription before dropping the caches.
RESUBSCRIBE_WAIT = 1.0


@dataclasses.dataclass(frozen=True)
class SessionsRevoked:
    """Sessions ended elsewhere: these id hashes, and every session of ``user_id`` or
    of ``partner_app_id`` (when given)."""

    hashes: tuple[str, ...] = ()
    user_id: int | None = None
    partner_app_id: int | None = None


@dataclasses.dataclass(frozen=True)
class MappingsRevoked:
    """Mapped pairs changed for these users; None: for any user."""

    user_ids: tuple[int, ...] | None


SessionsHandler = Callable[[SessionsRevoked], None]
MappingsHandler = Callable[[MappingsRevoked], None]


class Revocations:
    """This process's end of the broadcast: publishes what it revoked, and hands what
    others revoked to the caches that registered for it."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._origin = secrets.token_hex(8)
        self._sessions: list[SessionsHandler] = []
        self._mappings: list[MappingsHandler] = []
        self._resync: list[Callable[[], None]] = []
        link.subscribe(CHANNEL, self._receive)
        link.on_reconnect(self._reconnected)

    def on_sessions(self, handler: SessionsHandler, resync: Callable[[], None]) -> None:
        """Call ``handler`` for sessions revoked by another process, and ``resync`` when
        messages may have been lost (the link is back after being degraded)."""
        self._sessions.append(handler)
        self._resync.append(resync)

    def on_mappings(self, handler: MappingsHandler, resync: Callable[[], None]) -> None:
        self._mappings.append(handler)
        self._resync.append(resync)

    async def sessions_revoked(
        self,
        hashes: Sequence[str] = (),
        *,
        user_id: int | None = None,
        partner_app_id: int | None = None,
    ) -> None:
        """Tell the others; beyond :data:`MAX_IDS` hashes only the user or app is named."""
        body: dict[str, object] = {"kind": "sessions"}
        if len(hashes) <= MAX_IDS or (user_id is None and partner_app_id is None):
            body["hashes"] = list(hashes)
        if user_id is not None:
            body["user_id"] = user_id
        if partner_app_id is not None:
            body["partner_app_id"] = partner_app_id
        await self._publish(body)

    async def mappings_revoked(self, user_ids: Collection[int]) -> None:
        ids = sorted(set(user_ids))
        if ids:
            await self._publish(
                {"kind": "mappings", "user_ids": ids if len(ids) <= MAX_IDS else None}
            )

    async def _publish(self, body: dict[str, object]) -> None:
        body["from"] = self._origin
        if not await self._link.publish(CHANNEL, json.dumps(body).encode()):
            # The outage itself is logged once, by the link; this is one of its effects.
            logger.info(
                "revocation not broadcast (Redis unreachable); other processes see it "
                "within their revalidation window",
                extra={"kind": body["kind"]},
            )

    async def _receive(self, data: bytes) -> None:
        message = json.loads(data)
        if not isinstance(message, dict) or message.get("from") == self._origin:
            return
        kind = message.get("kind")
        if kind == "sessions":
            revoked = SessionsRevoked(
                tuple(_strings(message.get("hashes"))),
                _integer(message.get("user_id")),
                _integer(message.get("partner_app_id")),
            )
            for sessions in self._sessions:
                sessions(revoked)
        elif kind == "mappings":
            ids = message.get("user_ids")
            users = MappingsRevoked(None if ids is None else tuple(_integers(ids)))
            for mappings in self._mappings:
                mappings(users)
        else:
            logger.warning("unknown revocation message", extra={"kind": str(kind)[:40]})

    async def _reconnected(self) -> None:
        # Subscribed again first, so that no message falls between the drop and the
        # subscription; bounded, as the link may be lost again meanwhile.
        with anyio.move_on_after(RESUBSCRIBE_WAIT):
            await self._link.listening()
        for resync in self._resync:
            resync()


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _integers(values: object) -> list[int]:
    if not isinstance(values, list):
        return []
    return [value for value in values if _integer(value) is not None]


def _strings(values: object) -> list[str]:
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, str)]
