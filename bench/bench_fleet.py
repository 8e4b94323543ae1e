#!/usr/bin/env python3
"""Fleet mode at scale: N fresh databases on one server, migrated by 1, 4 and 8 task processes.

    python3 bench/bench_fleet.py                 # 200 databases, tasks 1 4 8 (several minutes)
    python3 bench/bench_fleet.py --databases 10 --tasks 2   # CI's smoke

Reports per task count: total wall time, the most job connections at once (pg_stat_activity sampled
every 20 ms), time per target (median and p95 of target.finished's duration_ms) and the share sizes.
Not a timed test: figures go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import subprocess  # noqa: E402

from jobtools import job_env, parse_events  # noqa: E402
from pgcluster import PgCluster, find_postgres_bindirs  # noqa: E402


def measure(cluster: PgCluster, count: int, tasks: int, concurrency: int, workdir: Path) -> dict[str, object]:
    names = [cluster.create_database(f"bench_{tasks}_{n:03d}") for n in range(count)]
    targets = workdir / f"targets-{tasks}.json"
    entries = [{"name": f"shop-{n:03d}", "url": cluster.url(d)} for n, d in enumerate(names)]
    targets.write_text(json.dumps(entries))
    peak, stop = [0], threading.Event()

    def sample() -> None:
        with cluster.admin() as conn:
            while not stop.is_set():
                (n,) = conn.execute("SELECT count(*) FROM pg_stat_activity"
                                    " WHERE application_name = 'db-init-job'").fetchone() or (0,)
                peak[0] = max(peak[0], int(n))
                time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    def env(i: int) -> dict[str, str]:
        return job_env(None, DB_INIT_FLEET_TARGETS=str(targets), CLOUD_RUN_TASK_INDEX=str(i),
                       CLOUD_RUN_TASK_COUNT=str(tasks), DB_INIT_FLEET_CONCURRENCY=str(concurrency))
    procs = [subprocess.Popen([sys.executable, "-m", "job", "fleet", "run"], cwd=ROOT, text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(i))
             for i in range(tasks)]
    outputs = [p.communicate()[1] for p in procs]
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    events = [e for out in outputs for e in parse_events(out)]
    done = [e for e in events if e["event"] == "target.finished"]
    assert all(p.returncode == 0 for p in procs) and len(done) == count, [p.returncode for p in procs]
    durations = sorted(float(e["duration_ms"]) for e in done)
    shares = [next(e["targets"] for e in parse_events(out) if e["event"] == "fleet.started")
              for out in outputs]
    for name in names:
        cluster.drop_database(name)
    return {"tasks": tasks, "concurrency": concurrency, "databases": count, "wall_s": round(wall, 1),
            "peak_connections": peak[0], "per_target_ms_median": round(statistics.median(durations)),
            "per_target_ms_p95": round(durations[int(0.95 * (len(durations) - 1))]), "shares": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    bindirs = find_postgres_bindirs()
    with PgCluster(bindirs[max(bindirs)]) as cluster, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL {cluster.version}, {args.databases} empty databases, fresh apply", flush=True)
        for tasks in args.tasks:
            figures = measure(cluster, args.databases, tasks, args.concurrency, Path(tmp))
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
