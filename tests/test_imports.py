"""A no-op imports only what a no-op uses (issue 21): every pod start pays for each module it loads.

Not a timed test: a real `python -X importtime -m job run` on an up-to-date database, in a subprocess, and
the list of modules it loaded (CPython prints one line per module imported, lazily imported ones too).
"""

from __future__ import annotations

import subprocess
import sys

from jobtools import ROOT, job_env, parse_events, run_job
from pgcluster import Db

# What the run beyond the glance needs (healing, the diff engine, the replay's statement lexer, the lock
# estimates), the other commands (plan's printing, resolve, fleet, demo, completion) and the Cloud Logging
# sink (off by default). A no-op connects, glances, and exits: none of these.
NOT_FOR_A_NOOP = (
    "job.heal", "job.schemadiff", "job.lockguard", "job.lockrisk", "job.lockestimate", "job.resolve",
    "job.fleet", "job.fleetcli", "job.pool", "job.shard", "job.targets", "job.demo", "job.completion",
    "job.cloudsink", "google.cloud",
)


def imported_by(argv: list[str], env: dict[str, str]) -> tuple[int, set[str], str]:
    res = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    modules = {line.rpartition("|")[2].strip() for line in res.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return res.returncode, modules, res.stderr


def test_a_noop_run_imports_nothing_a_noop_does_not_use(db: Db) -> None:
    assert run_job(db.url, "run").code == 0  # the folder applied: the next run is a no-op
    code, modules, stderr = imported_by(["-m", "job", "run"], job_env(db.url))
    assert code == 0, stderr[-2000:]
    finished = next(e for e in parse_events(stderr) if e.get("event") == "run.finished")
    assert finished["changed"] is False and finished["migrations_applied"] == []
    assert "job.database" in modules and "psycopg" in modules  # the listing works: what it needs is there
    loaded = sorted(m for m in modules if any(m == bad or m.startswith(bad + ".") for bad in NOT_FOR_A_NOOP))
    assert loaded == [], f"a no-op imported {loaded}"
