"""Isolation and security at the edges (issue 22): what an unlucky timing or a hostile role can do.

Real servers, real roles, real concurrent sessions: a row committed while the job waits for a lock, a
database whose default isolation is REPEATABLE READ, functions and operators planted in `public` by a role
with CREATE there, scratch schemas made by someone else.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR, start_job
from pgcluster import Db
from psycopg import sql
from scenarios import STATES, add_sessions

# The lock the job's drop of an "empty" table waits for, from another session.
_WAITING_ON = """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE NOT l.granted AND c.relname = %s AND l.database = (SELECT oid FROM pg_database
WHERE datname = current_database())"""


def _wait_until(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...], timeout: float = 30
                ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(query, params).fetchone() != (0,):
            return
        time.sleep(0.02)
    raise AssertionError(f"never true: {query}")


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
@pytest.mark.parametrize(("state", "empty"), [("both_lower_empty", "session"),
                                              ("both_upper_empty", "Session")])
def test_a_row_committed_while_the_job_waits_for_its_lock_is_never_dropped(db: Db, isolation: str, state: str,
                                                                           empty: str) -> None:
    """An old pod inserts into the "empty" table and commits while the job waits to lock it: whatever
    the database's default isolation, the job's re-check under the lock sees the row, and keeps it."""
    with db.connect() as conn:
        STATES[state](conn, "public", MIGRATIONS_DIR)
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_isolation = {}").format(
            sql.Identifier(db.name), sql.Literal(isolation)))
    with db.connect() as pod, db.connect() as watcher:
        pod.execute("BEGIN")
        add_sessions(pod, "public", empty, 1, prefix="late_pod")
        started = time.monotonic()
        job = start_job(db.url, DB_INIT_MIGRATIONS_DIR=str(MIGRATIONS_DIR), DB_INIT_DDL_LOCK_TIMEOUT="20s")
        try:
            _wait_until(watcher, _WAITING_ON, (empty,))
            pod.execute("COMMIT")
            _, err = job.communicate(timeout=120)
        finally:
            job.kill()
    assert time.monotonic() - started < 60
    with db.connect() as conn:
        tables = [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname IN"
                                             " ('session', 'Session') AND relkind = 'r'")]
        found = sum(len(conn.execute(sql.SQL("SELECT 1 FROM {} WHERE id = 'late_pod1.myshopify.com'")
                                     .format(sql.Identifier("public", t))).fetchall()) for t in tables)
    assert found == 1, err
