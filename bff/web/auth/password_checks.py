"""Password checks under a fixed bound, so sign-in traffic cannot exhaust memory or CPU.

Each Argon2id check (or re-hash) holds 64 MiB and about a tenth of a second on its own
four lanes. At most ``MAX_CONCURRENT_CHECKS`` run at once, in worker threads;
at most ``MAX_WAITING_CHECKS`` more wait their turn. An attempt beyond that is refused
at once (:meth:`PasswordChecks.admit` yields False) and the page asks the user to try
again in ``BUSY_RETRY_AFTER`` seconds; nothing grows without bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.to_thread
from prometheus_client import Gauge

from bff import passwords

# 4 x 64 MiB = 256 MiB at most for sign-in; each check already uses four lanes, so more
# at once would only share the same cores.
MAX_CONCURRENT_CHECKS = 4
# A full queue (4 running, 16 waiting) drains in about 2 s on two cores (measured: 20
# default checks, 4 at once); a longer one only makes every waiting user slower, and
# each waiting attempt holds just its request.
MAX_WAITING_CHECKS = 16
# Seconds: about the time a full queue takes to drain.
BUSY_RETRY_AFTER = 2


class PasswordChecks:
    """The bounded queue in front of :func:`bff.passwords.verify_password` and
    :func:`bff.passwords.hash_password`."""

    def __init__(
        self,
        *,
        concurrency: int = MAX_CONCURRENT_CHECKS,
        waiting: int = MAX_WAITING_CHECKS,
        gauge: Gauge | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency + waiting
        self._threads = anyio.CapacityLimiter(concurrency)
        self._admitted = 0
        self._gauge = gauge

    @property
    def admitted(self) -> int:
        """Sign-in attempts checking or waiting to check now."""
        return self._admitted

    @contextmanager
    def admit(self) -> Iterator[bool]:
        """Whether this attempt may check passwords (until the block ends); False when
        ``concurrency`` are running and ``waiting`` more are queued."""
        if self._admitted >= self.capacity:
            yield False
            return
        self._changed(+1)
        try:
            yield True
        finally:
            self._changed(-1)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """:func:`bff.passwords.verify_password` in a worker thread, within the bound.
        Call inside an admitted :meth:`admit` block."""
        # Not abandoned on cancellation: a thread still running must keep its slot.
        return await anyio.to_thread.run_sync(
            passwords.verify_password, password_hash, password, limiter=self._threads
        )

    async def hash(self, password: str) -> str:
        """:func:`bff.passwords.hash_password` in a worker thread, within the bound."""
        return await anyio.to_thread.run_sync(
            passwords.hash_password, password, limiter=self._threads
        )

    def _changed(self, delta: int) -> None:
        self._admitted += delta
        if self._gauge is not None:
            self._gauge.set(self._admitted)
