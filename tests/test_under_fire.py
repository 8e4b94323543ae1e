"""Racing replicas, killed jobs, signals mid-flight and a database that comes up late.

Real processes, real signals, a real server stopped and started. Waits are
bounded polls on real conditions.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jobtools import (
    MIGRATIONS_DIR,
    JobRun,
    finish,
    job_sessions,
    ledger,
    rows_by_table,
    run_job,
    start_job,
    wait_for_job_session,
)
from pgcluster import Db, PgCluster
from scenarios import STATES
from test_exit_codes import assert_clean_failure
from test_run import check_contract, check_ledger

from job.migrations import load_migrations
from job.statements import PRISMA_LOCK_KEY


def lock_holders(db: Db) -> int:
    with db.connect() as admin:
        row = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                            (PRISMA_LOCK_KEY,)).fetchone()
        return int(row[0]) if row else 0


def sigterm_caught(pid: int) -> bool:
    """From /proc: does the process have a handler for SIGTERM (bit 15 of SigCgt)?"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def poll(condition: Any, timeout: float, what: str) -> float:
    """Seconds until condition() is true; fails after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@pytest.mark.slow
def test_fifty_replicas_at_once_apply_everything_exactly_once(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
        before = rows_by_table(conn, "public")
    # A prisma migrate deploy holds the lock until all 50 have planned and queue up behind it.
    with psycopg.connect(db.url, autocommit=True, application_name="prisma-migrate") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
        started = time.monotonic()
        procs = [start_job(db.url, DB_INIT_LOCK_TIMEOUT="120s") for _ in range(50)]
        poll(lambda: job_sessions(db) == 50, 120, "all 50 replicas connecting")
        holder.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_LOCK_KEY,))
    runs = [finish(p, started, timeout=300) for p in procs]
    assert [r.code for r in runs] == [0] * 50, [r.stderr for r in runs if r.code][:1]
    appliers = [r for r in runs if r.summary["changed"]]
    assert len(appliers) == 1, "exactly one replica applies; the others find nothing left"
    waited = [r for r in runs if r.has("lock.waiting")]
    assert waited, "replicas queued behind the holder"
    for r in waited:  # each said who it waited for
        assert r.event("lock.waiting")["holder_application"] in ("prisma-migrate", "db-init-job")
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")
        sessions = conn.execute('SELECT count(*) FROM "Session"').fetchone()
        assert sessions == (len(before["session"]),)
    assert lock_holders(db) == 0 and job_sessions(db) == 0


def test_killed_while_holding_the_lock_the_server_frees_it_and_the_next_run_converges(db: Db) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
    # An app transaction keeps "session" busy, so the job sits holding the lock, mid-transaction.
    with psycopg.connect(db.url) as app:
        app.execute('SELECT count(*) FROM "session"')
        proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="30s", DB_INIT_LOCK_TIMEOUT="60s")
        poll(lambda: lock_holders(db) == 1, 15, "the job taking the lock")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        released = poll(lambda: lock_holders(db) == 0, 30, "the server releasing a killed job's lock")
        assert released < 10
        app.rollback()
    with db.connect() as conn:
        assert "session" in rows_by_table(conn, "public"), "the killed transaction must have rolled back"
    run = run_job(db.url)
    assert run.code == 0, run.stderr
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_apply_rolls_back_and_exits_7_within_5s(db: Db, sig: signal.Signals) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
        before = rows_by_table(conn, "public")
    with psycopg.connect(db.url) as app:
        app.execute('SELECT count(*) FROM "session"')
        started = time.monotonic()
        proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="30s")
        pid = wait_for_job_session(db)
        with db.connect() as admin:  # the job's DDL is waiting for the app's lock
            poll(lambda: admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                       (pid,)).fetchone() == ("Lock",), 15, "the job waiting on a table")
        sent = time.monotonic()
        proc.send_signal(sig)
        run = finish(proc, started)
        assert time.monotonic() - sent < 5
        app.rollback()
    assert_clean_failure(run, 7, f"interrupted by {sig.name}")
    assert lock_holders(db) == 0 and job_sessions(db) == 0
    with db.connect() as conn:
        assert rows_by_table(conn, "public") == before


def test_sigterm_while_waiting_for_the_database_exits_7_at_once(pg: PgCluster) -> None:
    url = "postgresql://postgres:pw-Secr3t!@127.0.0.1:9/postgres"  # nothing listens on port 9
    started = time.monotonic()
    proc = start_job(url, DB_INIT_CONNECT_TIMEOUT="60s")
    time.sleep(1)  # let it fail and back off at least once
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    run = finish(proc, started)
    assert time.monotonic() - sent < 5
    assert_clean_failure(run, 7, "SIGTERM")


def _late_server(delay: float, budget: str) -> JobRun:
    """A server of its own, stopped; the job starts first and the server `delay` seconds later."""
    from pgcluster import find_postgres_bindirs

    bindirs = find_postgres_bindirs()
    with PgCluster(bindirs[max(bindirs)]) as cluster:
        url = cluster.url()
        cluster.stop()
        started = time.monotonic()
        proc = start_job(url, DB_INIT_CONNECT_TIMEOUT=budget)
        timer = threading.Timer(delay, cluster.start)
        timer.start()
        try:
            run = finish(proc, started)
        finally:
            timer.cancel()
            timer.join()
        if run.code == 0:
            with cluster.admin() as conn:
                assert ledger(conn, "public")
        return run


@pytest.mark.slow
@pytest.mark.parametrize("delay", [5, 20])
def test_database_coming_up_late_is_waited_for(delay: float) -> None:
    run = _late_server(delay, "60s")
    assert run.code == 0, run.stderr
    assert run.seconds >= delay
    assert any(e["event"] == "db.connect.retry" for e in run.events)


def test_sigterm_during_start_up_still_exits_7(pg: PgCluster) -> None:
    started = time.monotonic()
    proc = start_job(pg.url(), DB_INIT_CONNECT_TIMEOUT="60s")
    # The moment the job catches SIGTERM (its handler is in), while it is still importing psycopg.
    poll(lambda: sigterm_caught(proc.pid), 10, "the SIGTERM handler being installed")
    proc.send_signal(signal.SIGTERM)
    run = finish(proc, started)
    assert run.code == 7, (run.code, run.stderr)
    assert "Traceback" not in run.stderr


FINISHED = ("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL"
            " AND rolled_back_at IS NULL AND migration_name = ANY(%s)")


def test_killed_right_after_the_last_commit_the_next_run_is_a_no_op(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    shipped = [m.name for m in load_migrations(MIGRATIONS_DIR)]
    proc = start_job(db.url)
    with db.connect() as admin:
        poll(lambda: admin.execute(FINISHED, (shipped,)).fetchone() == (len(shipped),), 30, "the last commit")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    run = run_job(db.url)
    assert run.code == 0, run.stderr
    assert run.summary["changed"] is False
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")


def test_killed_between_two_migrations_the_next_run_applies_the_rest_once(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    first = [m.name for m in load_migrations(MIGRATIONS_DIR)][:1]
    proc = start_job(db.url)
    with db.connect() as admin:
        poll(lambda: admin.execute(FINISHED, (first,)).fetchone() == (1,), 30, "the first migration's commit")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    run = run_job(db.url)
    assert run.code == 0, run.stderr
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")


def test_server_stopped_mid_run_exits_3_and_the_restarted_server_converges(db: Db) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
    app = psycopg.connect(db.url)
    app.execute('SELECT count(*) FROM "session"')  # the job will wait on this, mid-transaction
    started = time.monotonic()
    proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="30s")
    poll(lambda: lock_holders(db) == 1, 15, "the job taking the lock")
    db.cluster.stop("fast")
    run = finish(proc, started)
    app.close()
    assert_clean_failure(run, 3, "connection lost")
    db.cluster.start()
    again = run_job(db.url)
    assert again.code == 0, again.stderr
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")


@pytest.mark.slow
def test_database_coming_up_after_45s_is_waited_for_within_the_budget() -> None:
    run = _late_server(45, "90s")
    assert run.code == 0, run.stderr


def test_database_never_up_exits_3_at_the_budget() -> None:
    from pgcluster import find_postgres_bindirs

    bindirs = find_postgres_bindirs()
    with PgCluster(bindirs[max(bindirs)]) as cluster:
        url = cluster.url()
        cluster.stop()
        run = run_job(url, DB_INIT_CONNECT_TIMEOUT="4s")
    assert_clean_failure(run, 3, "unreachable after 4s")
    assert 3.5 <= run.seconds < 15


class AppTraffic:
    """A pgbench-like client: reads and writes sessions 1-6 in a loop, recording each round's latency."""

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table = url, table
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            n = 0
            while not self._stop.is_set():
                n += 1
                t = time.monotonic()
                conn.execute(f'SELECT "accessToken" FROM "{self.table}" WHERE id = %s',
                             (f"offline_shop{n % 6 + 1}.myshopify.com",))
                conn.execute(f'UPDATE "{self.table}" SET state = %s WHERE id = %s',
                             (f"s{n}", f"offline_shop{n % 6 + 1}.myshopify.com"))
                self.latencies.append(time.monotonic() - t)
                time.sleep(0.01)

    def __enter__(self) -> AppTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_live_traffic_never_waits_longer_than_the_ddl_lock_timeout(db: Db) -> None:
    """A long FOR SHARE transaction holds "Session"; the job's ALTER must back off, not queue the app."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "Session" DROP COLUMN "refreshToken"')  # work that needs ACCESS EXCLUSIVE
    with AppTraffic(db.url, "Session") as app:
        with psycopg.connect(db.url) as blocker:
            # One row the app does not touch: the app itself is never blocked by the blocker.
            untouched = ("offline_shop7.myshopify.com",)
            blocker.execute('SELECT * FROM "Session" WHERE id = %s FOR SHARE', untouched)
            started = time.monotonic()
            proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="250ms", DB_INIT_LOCK_TIMEOUT="60s",
                             DB_INIT_HEAL="always")  # the ledger is complete: only a full look sees it
            time.sleep(4)  # the blocker keeps its lock while the job tries
            blocker.rollback()
        run = finish(proc, started)
    assert run.code == 0, run.stderr
    assert any(e["event"] == "apply.retry" and e["sqlstate"] == "55P03" for e in run.events)
    # The blocker's FOR SHARE does not block the app; only the job's pending ACCESS EXCLUSIVE could.
    assert max(app.latencies) < 0.25 + 0.5, f"an app query waited {max(app.latencies):.2f}s"
