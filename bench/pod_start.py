"""Issue 21, every pod start at the floor: the whole sitting in one command, one cluster, one JSON.

    python bench/pod_start.py --json bench/pod-start.json            # the sitting bench/RESULTS.md quotes
    python bench/pod_start.py --quick                                 # each part once, tiny (the CI smoke)

1. The no-op (an up-to-date database): the floor (bench/floor.py: Python, import psycopg, connect,
   select 1), the job, Prisma 7's `migrate deploy` and dbmate (bench/noop.py); goal: job <= 1.15x floor.
2. The fresh apply (an empty database, re-created before each run): the job, the floor + psql of the same
   files, Prisma 7's deploy and dbmate (bench/fresh.py); goal: job <= 1.2x floor + psql.
3. The import profile of a no-op, before (the job at ``--before``, the main branch before issue 21's
   changes) and after (this checkout) (bench/imports.py).

Prisma 7 is the offline CLI of tests/interop/prisma7 (tests/matrix.py installs it; BENCH_PRISMA7 names
another prisma.sh); where it is missing the JSON says "not installed". Figures under load are upper
bounds; ratios come from one hyperfine invocation per round, the order alternating (bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import fresh
import imports
import noop
from common import load, shared_cluster
from run_all import machine

BEFORE = "f4896e8"  # main when issue 21's work began: the no-op imported the whole job


def sizes(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:  # Prisma's deploy (~2 s a run) is left out of the smoke
        return {"noop": {"runs": 1, "warmup": 0, "rounds": 1, "prisma": False, "rss_repeat": 1},
                "fresh": {"runs": 1, "warmup": 0, "rounds": 1, "peers": True, "prisma": False},
                "imports": {"repeat": 1}}
    return {"noop": {"runs": 4, "warmup": 3, "rounds": 5}, "fresh": {"runs": 3, "warmup": 2, "rounds": 4,
                                                                      "peers": True},
            "imports": {"repeat": 11}}


def run(quick: bool, before: str) -> dict[str, Any]:
    plan = sizes(quick)
    r: dict[str, Any] = {"machine": machine(), "quick": quick, "load_start": load(), "before": before}
    try:
        old: Path | None = imports.job_at(before)
    except subprocess.CalledProcessError as exc:  # a shallow clone, or no git history (an image)
        old = None
        r["imports_before"] = {"skipped": f"the job at {before} is not available:"
                                          f" {exc.stderr.decode(errors='replace').strip()[:200]}"}
    try:
        with shared_cluster():
            started = time.monotonic()
            r["noop"] = noop.measure(**plan["noop"])
            r["fresh"] = fresh.measure(**plan["fresh"])
            if old is not None:
                r["imports_before"] = imports.measure(**plan["imports"], code=old)
            r["imports_after"] = imports.measure(**plan["imports"])
            r["seconds"] = round(time.monotonic() - started, 1)
    finally:
        if old is not None:
            shutil.rmtree(old)
    r["load_end"] = load()
    return r


def table(r: dict[str, Any]) -> None:
    print(f"pod start at the floor (issue 21); {r['load_start']} at the start, {r['load_end']} at the end")
    for part, base, goal in (("noop", "floor", 1.15), ("fresh", "floor + psql", 1.2)):
        times = r[part]["results"]
        print(f"\n{part}: | | median wall | min | CPU | peak RSS | / {base} |")
        for name, t in times.items():
            over = "" if name == base else f"{t['median_ms'] / times[base]['median_ms']:.2f}x"
            print(f"| {name} | {t['median_ms']} ms | {t['min_ms']} ms | {t.get('cpu_ms', '-')} |"
                  f" {t.get('peak_rss_mb', '-')} | {over} |")
        ratio = r[part].get("job_over_floor", r[part].get("job_over_floor_psql"))
        print(f"job / {base}, median of per-round ratios: {ratio} (goal <= {goal})")
        for note in r[part].get("notes", []):
            print(f"note: {note}")
    b, a = r["imports_before"], r["imports_after"]
    if "skipped" in b:
        print(f"\nimports of a no-op (job - floor): {a['job_minus_floor_ms']} ms,"
              f" {len(a['job_modules_loaded'])} job modules; before: {b['skipped']}")
        return
    print(f"\nimports of a no-op (job - floor): before ({r['before']}) {b['job_minus_floor_ms']} ms,"
          f" {len(b['job_modules_loaded'])} job modules; after {a['job_minus_floor_ms']} ms,"
          f" {len(a['job_modules_loaded'])} job modules")
    gone = sorted(set(b["job_modules_loaded"]) - set(a["job_modules_loaded"]))
    print("  no longer loaded:", ", ".join(gone) or "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each part once at tiny size")
    parser.add_argument("--before", default=BEFORE, help=f"git revision of the job before (default {BEFORE})")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    r = run(args.quick, args.before)
    table(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2, default=str) + "\n")
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
