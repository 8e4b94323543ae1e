"""Question 2: import time on the no-op path (`python -X importtime`), the job against the floor.

    python bench/imports.py [--repeat N]

Both processes are run for real against an up-to-date database, alternating, ``repeat`` times each:
the floor (bench/floor.py: import psycopg, connect, select 1) and a no-op `python -m job run`, so imports
done lazily during the run are counted too. Per run: the sum of every module's own ("self") import
time; per module imported by the job but not by the floor: its least self time (the least disturbed).
Goal (issue 12): the job's imports <= 100 ms above the floor's. ``code``: the job's source to profile
(``job_at(rev)``: the job as it was at a git revision, for a before/after of issue 21).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import FLOOR, PY, ROOT, cluster, database, job_env, load


def importtime(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> dict[str, int]:
    """Module -> self import time in µs, from one real run (`-m` imports from ``cwd`` first)."""
    res = subprocess.run([PY, "-X", "importtime", *argv], env=env, capture_output=True, text=True,
                         cwd=cwd, check=True)
    found: dict[str, int] = {}
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|")
            found[name.strip()] = found.get(name.strip(), 0) + int(self_us)
    return found


def job_at(rev: str) -> Path:
    """The job package as it was at git revision ``rev``, extracted and compiled (.pyc, as in the image):
    the directory to put on PYTHONPATH."""
    into = Path(tempfile.mkdtemp(prefix="bench-job-"))
    archive = subprocess.run(["git", "archive", rev, "job"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    subprocess.run([PY, "-m", "compileall", "-q", str(into / "job")], check=True)
    return into


def measure(repeat: int, code: Path = ROOT) -> dict[str, Any]:
    with cluster() as pg:
        _, url = database(pg, "fixed")
        env = job_env(url) | {"PYTHONPATH": str(code)}
        before = load()
        floors, jobs = [], []
        for _ in range(repeat):
            floors.append(importtime([str(FLOOR)], env))
            jobs.append(importtime(["-m", "job", "run"], env, cwd=code))
    floor_total = statistics.median(sum(f.values()) for f in floors) / 1000
    job_total = statistics.median(sum(j.values()) for j in jobs) / 1000
    floor_min = min(sum(f.values()) for f in floors) / 1000
    job_min = min(sum(j.values()) for j in jobs) / 1000
    floor_modules = set().union(*floors)
    extra = {m for j in jobs for m in j} - floor_modules
    by_module = {m: min(j.get(m, 0) for j in jobs) / 1000 for m in extra}  # least disturbed
    # Group the job-only modules by top-level package: what to look at first.
    by_package: dict[str, float] = {}
    for m, ms in by_module.items():
        by_package[m.split(".")[0]] = by_package.get(m.split(".")[0], 0) + ms
    top = sorted(by_module.items(), key=lambda kv: -kv[1])[:15]
    return {"load_before": before, "load_after": load(), "repeat": repeat,
            "floor_imports_ms": round(floor_total, 1), "job_imports_ms": round(job_total, 1),
            "job_minus_floor_ms": round(job_total - floor_total, 1),
            "floor_imports_min_ms": round(floor_min, 1), "job_imports_min_ms": round(job_min, 1),
            "job_minus_floor_min_ms": round(job_min - floor_min, 1),
            "job_only_modules": len(extra),
            "job_modules_loaded": sorted(m for m in set().union(*jobs) if m.split(".")[0] == "job"),
            "job_only_by_package_ms": {k: round(v, 1)
                                       for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])},
            "job_only_top_modules_ms": {k: round(v, 1) for k, v in top},
            "asyncio_in_floor": "asyncio" in floor_modules,
            "heavy_in_job": sorted(m for m in ("asyncio", "structlog.stdlib", "logging",
                                               "google.cloud.logging",
                                               "uuid", "ssl", "json", "inspect")
                                   if any(m in j for j in jobs))}


def report(r: dict[str, Any]) -> None:
    print(f"imports on a no-op run (median of {r['repeat']} alternating runs each; {r['load_before']})")
    print(f"  floor {r['floor_imports_ms']} ms, job {r['job_imports_ms']} ms:"
          f" job - floor = {r['job_minus_floor_ms']} ms; of the fastest runs: {r['job_imports_min_ms']} -"
          f" {r['floor_imports_min_ms']} = {r['job_minus_floor_min_ms']} ms (goal <= 100 ms);"
          f" {r['job_only_modules']} modules more")
    print("  job-only modules by package (ms, fastest run):",
          ", ".join(f"{k} {v}" for k, v in list(r["job_only_by_package_ms"].items())[:8]))
    print("  heaviest job-only modules (ms, fastest run):",
          ", ".join(f"{k} {v}" for k, v in list(r["job_only_top_modules_ms"].items())[:8]))
    print(f"  asyncio imported by the floor (psycopg) too: {r['asyncio_in_floor']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.repeat)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
