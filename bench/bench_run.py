"""Figures for README: how long a fresh apply, a repair and a no-op run take.

Not a test: it prints numbers.  Each run is the real CLI in a subprocess
against a throwaway PostgreSQL; ``wall`` includes Python's start-up and
imports, ``job`` is the job's own duration_ms from its final log line.

    python3 dev.py bench [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from jobtools import MIGRATIONS_DIR, JobRun, run_job
from pgcluster import PgCluster, find_postgres_bindirs

from job.scenarios import STATES


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
    n = parser.parse_args().repeat
    bindirs = find_postgres_bindirs()
    with PgCluster(bindirs[max(bindirs)]) as cluster:
        print(f"PostgreSQL {cluster.version}, {n} runs each\n")
        line("fresh apply (empty database)", [run_job(fresh(cluster, "empty")) for _ in range(n)])
        line("production break (failed row + lowercase)", [run_job(fresh(cluster, "demo")) for _ in range(n)])
        url = fresh(cluster, "fixed")
        line("no-op (already up to date)", [run_job(url) for _ in range(n)])


if __name__ == "__main__":
    main()
