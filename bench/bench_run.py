"""Figures for README: how long a fresh apply, a repair and a no-op run take.

Not a test: it prints numbers.  Each run is the real CLI in a subprocess
against a throwaway PostgreSQL; ``wall`` includes Python's start-up and
imports, ``job`` is the job's own duration_ms from its final log line.

    python3 dev.py bench [--repeat N]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from jobtools import MIGRATIONS_DIR, JobRun, finish, run_job, start_job
from pgcluster import PgCluster, find_postgres_bindirs
from scenarios import STATES


def fresh(cluster: PgCluster, state: str) -> str:
    name = cluster.create_database()
    with cluster.admin(name) as conn:
        STATES[state](conn, "public", MIGRATIONS_DIR)
    return cluster.url(name)


def line(label: str, runs: list[JobRun]) -> None:
    wall = [r.seconds * 1000 for r in runs]
    job = [float(r.summary["duration_ms"]) for r in runs]
    assert all(r.code == 0 for r in runs), [r.stderr for r in runs if r.code]
    print(f"{label:42} n={len(runs):3}  wall median {statistics.median(wall):7.1f} ms"
          f"  (min {min(wall):6.1f})   job median {statistics.median(job):6.1f} ms (min {min(job):6.1f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--blocker", type=float, default=30.0, help="seconds the FOR SHARE blocker holds")
    args = parser.parse_args()
    n = args.repeat
    bindirs = find_postgres_bindirs()
    with PgCluster(bindirs[max(bindirs)]) as cluster:
        print(f"PostgreSQL {cluster.version}, {n} runs each\n")
        line("fresh apply (empty database)", [run_job(fresh(cluster, "empty")) for _ in range(n)])
        line("production break (failed row + lowercase)", [run_job(fresh(cluster, "demo")) for _ in range(n)])
        url = fresh(cluster, "fixed")
        line("no-op (already up to date)", [run_job(url) for _ in range(n)])
        replicas(cluster, 50)
        killed_lock_release(cluster)
        live_traffic(cluster, blocker_s=args.blocker)


def replicas(cluster: PgCluster, count: int) -> None:
    url = fresh(cluster, "demo")
    started = time.monotonic()
    runs = [finish(p, started, 300) for p in [start_job(url, DB_INIT_LOCK_TIMEOUT="120s")
                                               for _ in range(count)]]
    total = time.monotonic() - started
    assert all(r.code == 0 for r in runs)
    waited = max(float(r.event("lock.acquired")["waited_s"]) for r in runs if r.has("lock.acquired"))
    print(f"{count} replicas started at once: all exit 0 in {total:.1f} s wall;"
          f" {sum(r.summary['changed'] for r in runs)} applied, longest lock wait {waited:.2f} s")


def live_traffic(cluster: PgCluster, blocker_s: float) -> None:
    """Worst app-query wait while a FOR SHARE transaction holds "Session", without and with the job."""
    from test_under_fire import AppTraffic

    for with_job in (False, True):
        url = fresh(cluster, "fixed")
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute('ALTER TABLE "Session" DROP COLUMN "refreshToken"')  # needs ACCESS EXCLUSIVE
        with AppTraffic(url, "Session") as app, psycopg.connect(url) as blocker:
            untouched = ("offline_shop7.myshopify.com",)  # a row the app's loop never uses
            blocker.execute('SELECT * FROM "Session" WHERE id = %s FOR SHARE', untouched)
            proc = start_job(url, DB_INIT_LOCK_TIMEOUT="120s") if with_job else None
            time.sleep(blocker_s)
            blocker.rollback()
            run = finish(proc, time.monotonic()) if proc else None
        worst = max(app.latencies) * 1000
        retries = sum(e["event"] == "apply.retry" for e in run.events) if run else 0
        outcome = f"job exit {run.code} after {retries} backed-off attempts" if run else "no job"
        print(f"live traffic, {blocker_s:g} s FOR SHARE blocker, {len(app.latencies)} app rounds, {outcome}:"
              f" worst app round {worst:.0f} ms")


def killed_lock_release(cluster: PgCluster) -> None:
    """SIGKILL the job while it holds the lock and waits on a busy table; time until the server frees it."""
    url = fresh(cluster, "lowercase")
    key = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369"
    with psycopg.connect(url) as app, psycopg.connect(url, autocommit=True) as admin:
        app.execute('SELECT count(*) FROM "session"')
        proc = start_job(url, DB_INIT_DDL_LOCK_TIMEOUT="30s")
        while admin.execute(key).fetchone() != (1,):
            time.sleep(0.01)
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while admin.execute(key).fetchone() != (0,):
            time.sleep(0.005)
        freed_ms = 1000 * (time.monotonic() - killed)
        print(f"lock of a SIGKILLed job released by the server after {freed_ms:.0f} ms")
        app.rollback()
    with psycopg.connect(url, autocommit=True) as holder:  # the job waits for the lock, then is stopped
        holder.execute("SELECT pg_advisory_lock(72707369)")
        proc = start_job(url)
        while holder.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'db-init-job'"
                             ).fetchone() != (1,):
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        print(f"SIGTERM while waiting for the lock to exit (code {proc.returncode}):"
              f" {1000 * (time.monotonic() - sent):.0f} ms")


if __name__ == "__main__":
    main()
