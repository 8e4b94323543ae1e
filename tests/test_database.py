"""The seam itself: an interrupt that lands inside psycopg stays an interrupt."""

from __future__ import annotations

import signal
from types import FrameType

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR
from pgcluster import Db
from scenarios import STATES

from job.database import Database
from job.errors import Interrupted


def test_a_signal_during_the_pipelined_inspection_is_an_interrupt_not_a_fault(db: Db) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)

    def handler(signum: int, _: FrameType | None) -> None:
        raise Interrupted("SIGALRM")

    previous = signal.signal(signal.SIGALRM, handler)
    with psycopg.connect(db.url) as blocker:  # inspection's count of "session" waits on this lock
        blocker.execute('LOCK TABLE "session" IN ACCESS EXCLUSIVE MODE')
        database = Database.open({"host": "127.0.0.1", "port": str(db.cluster.port), "dbname": db.name,
                                  "user": "postgres", "password": db.cluster.password})
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Interrupted):
                database.inspect("public")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            database.close()
