"""Prisma Migrate's advisory lock, waited for by polling within a deadline.

Never a bare blocking ``pg_advisory_lock``: a blocked waiter can deadlock with
a holder running CREATE INDEX CONCURRENTLY, cannot time out cleanly, and tells
nobody who it waits for.  Polling ``pg_try_advisory_lock`` does all three.

Two scopes share the key, and so exclude each other and `prisma migrate deploy`:
the session lock (direct connections: held across the apply and validations),
and the transaction lock (behind a transaction pooler such as PgBouncer, where a
session lock would stay on a server connection that another client gets next).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from job.database import Database, DatabaseFault
from job.errors import LockBusy

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
HOLDER_LOG_EVERY_S = 5.0


class LockWait:
    """The waiting half of a lock: backoff, the holder logged now and then, a deadline."""

    def __init__(self, db: Database, budget_s: float, log: Any) -> None:
        self._db, self._budget, self._log = db, budget_s, log
        self.started = time.monotonic()
        self._deadline = self.started + budget_s
        self._delay, self._last_report = FIRST_DELAY_S, float("-inf")

    def pause(self) -> None:
        """The lock is busy: wait a little, or raise LockBusy once the budget is spent."""
        now = time.monotonic()
        if now >= self._deadline:
            raise LockBusy(f"migration lock still held by {_describe(self._db.lock_holders())}"
                           f" after {self._budget:g}s", waited_s=round(now - self.started, 1))
        if now - self._last_report >= HOLDER_LOG_EVERY_S:
            self._last_report = now
            for h in self._db.lock_holders():
                self._log.info("lock.waiting", holder_pid=h.pid, holder_application=h.application_name,
                               holder_client=h.client, holder_since=h.connected_since.isoformat(),
                               holder_state=h.state, waited_s=round(now - self.started, 1))
        # Jittered exponential polling: replicas spread out instead of hammering in step.
        time.sleep(min(self._delay * random.uniform(0.5, 1.5), max(0.0, self._deadline - now)))
        self._delay = min(self._delay * 2, MAX_DELAY_S)

    def acquired(self, scope: str) -> None:
        self._log.info("lock.acquired", scope=scope, waited_s=round(time.monotonic() - self.started, 3))


@contextmanager
def session_lock(db: Database, wait: LockWait, log: Any) -> Iterator[None]:
    while not db.try_lock():
        wait.pause()
    wait.acquired("session")
    try:
        yield
    finally:
        try:
            db.unlock()
            log.info("lock.released")
        except DatabaseFault:
            pass  # the connection is gone, and the server dropped the lock with it


def _describe(holders: list[Any]) -> str:
    if not holders:
        return "another session"
    h = holders[0]
    return f"pid {h.pid} ({h.application_name or 'no application_name'}, {h.client})"
