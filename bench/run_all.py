"""Every bench question in one sitting: a table on stdout, every figure in JSON.

    python3 dev.py bench                      # = python bench/run_all.py --json bench/results.json
    python bench/run_all.py --quick           # each script once at tiny size (the CI smoke's sizes)

One script per question (each also runs alone): noop.py (1), imports.py (2), fresh.py (3), replicas.py
(4), image.py (5). bench/RESULTS.md quotes a full run; figures under load are upper bounds, ratios come
from one hyperfine invocation each. bench_run.py keeps the older "under fire" figures (killed lock
holder, SIGTERM, live traffic).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fresh
import image
import imports
import noop
import replicas
import settled_probe
from common import PY, load, pick_bindir, shared_cluster


def sizes(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:
        return {"noop": {"runs": 1, "warmup": 0, "rounds": 1, "prisma": False, "rss_repeat": 1},
                "imports": {"repeat": 1}, "fresh": {"runs": 1, "warmup": 0, "rounds": 1},
                "replicas": {"counts": [2]}, "image": {"runs": 1, "warmup": 0},
                "settled_probe": {"processes": 1}}
    return {"noop": {"runs": 4, "warmup": 3, "rounds": 5}, "imports": {"repeat": 11},
            "fresh": {"runs": 3, "warmup": 2, "rounds": 4}, "settled_probe": {"processes": 10},
            "replicas": {"counts": [10, 50, 100]}, "image": {"runs": 10, "warmup": 2}}


def machine() -> dict[str, str]:
    def out(*cmd: str) -> str:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return res.stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "missing"
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": str(os.cpu_count()), "postgres": out(str(pick_bindir() / "postgres"), "--version"),
            "hyperfine": out("hyperfine", "--version"), "podman": out("podman", "--version"),
            "psql": out("psql", "--version"), "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "python_exe": PY}


def run(quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    plan = sizes(quick)
    modules = {"noop": noop, "imports": imports, "fresh": fresh, "replicas": replicas,
               "settled_probe": settled_probe, "image": image}
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "load_start": load()}
    with shared_cluster():
        for name, module in modules.items():
            if only and name not in only:
                continue
            started = time.monotonic()
            results[name] = module.measure(**plan[name])
            results[name]["seconds"] = round(time.monotonic() - started, 1)
            module.report(results[name])
            print(flush=True)
    results["load_end"] = load()
    table(results)
    return results


def table(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    if "noop" in r:
        n = r["noop"]
        rows.append(("1 no-op: job / floor", f"{n['job_over_floor']}x ({n['results']['job']['median_ms']} vs"
                     f" {n['results']['floor']['median_ms']} ms; of minimums {n['job_over_floor_min']}x)",
                     "<= 1.3x"))
        if "prisma_over_job" in n:
            rows.append(("1 no-op: prisma deploy / job", f"{n['prisma_over_job']}x", ">= 4x"))
        if "dbmate_over_job" in n:
            rows.append(("1 no-op: dbmate (npm) / job", f"{n['dbmate_over_job']}x", "-"))
        rows.append(("1 no-op: CPU time job / floor", f"{n['job_over_floor_cpu']}x"
                     f" ({n['results']['job']['cpu_ms']} vs {n['results']['floor']['cpu_ms']} ms user + sys)",
                     "-"))
        rows.append(("1 no-op: peak RSS job / floor", f"{n['results']['job']['peak_rss_mb']} /"
                     f" {n['results']['floor']['peak_rss_mb']} MB", "-"))
    if "imports" in r:
        rows.append(("2 imports: job - floor", f"{r['imports']['job_minus_floor_ms']} ms (fastest runs:"
                     f" {r['imports']['job_minus_floor_min_ms']} ms)", "<= 100 ms"))
    if "fresh" in r:
        rows.append(("3 fresh: job / (floor + psql)", f"{r['fresh']['job_over_floor_psql']}x (of minimums"
                     f" {r['fresh']['job_over_floor_psql_min']}x)", "<= 1.2x"))
    if "replicas" in r:
        t = r["replicas"]["roundtrips_noop"]
        rows.append(("4 round trips per no-op (after connect)", str(t["job_after_connect"]), "<= 3"))
        for b in r["replicas"]["batches"]:
            label = f"4 {b['replicas']} x {'break' if b['state'] == 'demo' else 'up to date'}"
            value = (f"slowest {b['slowest_exit_s']} s, exits {b['exit_codes']},"
                     f" once {b['each_migration_once']}")
            if b["critical_section_ms"] is not None:
                value += f", critical {b['critical_section_ms']} ms"
            if b["state"] == "fixed" and "server_ms_per_replica" in b:
                value += f", {b['server_ms_per_replica']} ms server / replica"
            rows.append((label, value, "once; <= 5 ms; <= 1 s"))
    if "settled_probe" in r:
        p = r["settled_probe"]
        rows.append(("4 proposed settled probe (not the job)", f"{p['roundtrips_after_connect']} round trip,"
                     f" {p.get('server_ms_per_process')} ms server / process", "<= 3; <= 5 ms"))
    if "image" in r and "sizes" in r["image"]:
        rows.append(("5 image: job's own layers", f"{r['image']['sizes']['job_layers_mb']} MB", "<= 20 MB"))
        rows.append(("5 podman run no-op: job / floor", f"{r['image']['job_over_floor']}x", "-"))
    width = max(len(a) for a, _, _ in rows)
    print(f"{'question':{width}}  {'figure':60}  goal")
    for a, b, c in rows:
        print(f"{a:{width}}  {b:60}  {c}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script once at tiny size")
    parser.add_argument("--only", help="comma-separated: noop,imports,fresh,replicas,image")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = run(args.quick, args.only.split(",") if args.only else None)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
