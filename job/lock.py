"""Prisma Migrate's advisory lock, waited for by polling within a deadline.

Never a bare blocking ``pg_advisory_lock``: a blocked waiter can deadlock with
a holder running CREATE INDEX CONCURRENTLY, cannot time out cleanly, and tells
nobody who it waits for.  Polling ``pg_try_advisory_lock`` does all three.
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


@contextmanager
def migration_lock(db: Database, *, budget_s: float, log: Any) -> Iterator[None]:
    started = time.monotonic()
    deadline = started + budget_s
    delay, last_report = FIRST_DELAY_S, float("-inf")
    while not db.try_lock():
        now = time.monotonic()
        if now >= deadline:
            raise LockBusy(f"migration lock still held by {_describe(db.lock_holders())}"
                           f" after {budget_s:g}s", waited_s=round(now - started, 1))
        if now - last_report >= HOLDER_LOG_EVERY_S:
            last_report = now
            for h in db.lock_holders():
                log.info("lock.waiting", holder_pid=h.pid, holder_application=h.application_name,
                         holder_client=h.client, holder_since=h.connected_since.isoformat(),
                         holder_state=h.state, waited_s=round(now - started, 1))
        # Jittered exponential polling: replicas spread out instead of hammering in step.
        time.sleep(min(delay * random.uniform(0.5, 1.5), max(0.0, deadline - now)))
        delay = min(delay * 2, MAX_DELAY_S)
    log.info("lock.acquired", waited_s=round(time.monotonic() - started, 3))
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
