"""Question 1: what every pod restart costs. A no-op run on an up-to-date database, whole process.

    python bench/noop.py [--runs N] [--warmup N]

In one hyperfine invocation (so ratios come from one sitting), on databases of one server:
the floor (bench/floor.py), the job (`python -m job run`), the real `prisma migrate deploy` (npm prisma
6.19 through tests/interop/prisma.sh, on the same database: it shares the job's ledger) and
`dbmate --no-dump-schema up` (npm dbmate, on a sibling database the same migrations brought up to date
with dbmate's own ledger); Prisma 7's deploy too where tests/interop/prisma7 is installed (bench/common.py).
Peak RSS from `/usr/bin/time -v`. Goals (issue 12): job <= 1.3x the floor, >= 4x faster than Prisma's deploy.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from common import (
    DBMATE,
    MIGRATIONS,
    PRISMA,
    cluster,
    database,
    floor_cmd,
    gnu_time,
    hyperfine_rounds,
    job_cmd,
    job_env,
    load,
    prisma7_cmd,
    prisma7_env,
    ratio,
    round_ratio,
    tools_missing,
)


def dbmate_folder(into: Path) -> Path:
    """The same migration files in dbmate's layout: <version>_<name>.sql with a `-- migrate:up` marker."""
    into.mkdir(parents=True, exist_ok=True)
    for d in sorted(p for p in MIGRATIONS.iterdir() if p.is_dir()):
        text = (d / "migration.sql").read_text()
        version, _, name = d.name.partition("_")
        (into / f"{version}_{name}.sql").write_text(f"-- migrate:up\n{text}\n-- migrate:down\n")
    return into


def measure(runs: int, warmup: int, rounds: int = 5, peers: bool = True, prisma: bool = True,
            rss_repeat: int = 5) -> dict[str, Any]:
    with cluster() as pg:
        _, url = database(pg, "fixed")
        env = job_env(url) | prisma7_env()
        commands = {"floor": floor_cmd(), "job": job_cmd()}
        notes: list[str] = []
        missing = tools_missing(str(PRISMA.parent / "node_modules" / "prisma"), "node")
        if peers and prisma and not missing:
            commands["prisma migrate deploy"] = f"{PRISMA} migrate deploy"
        elif peers and prisma:
            notes.append(f"prisma skipped: missing {', '.join(missing)}")
        if peers and prisma and (deploy7 := prisma7_cmd()) is not None:
            commands["prisma 7 migrate deploy"] = deploy7
        elif peers and prisma:
            notes.append("prisma 7: not installed (tests/interop/prisma7, or BENCH_PRISMA7)")
        dbmate_url = None
        if peers and DBMATE.exists():
            _, plain = database(pg, "empty")
            folder = dbmate_folder(Path(tempfile.mkdtemp(prefix="bench-dbmate-")) / "migrations")
            dbmate_url = plain + "?sslmode=disable"
            base = f"{DBMATE} --url {shlex.quote(dbmate_url)} --migrations-dir {folder} --no-dump-schema"
            subprocess.run([*shlex.split(base), "up"], check=True, capture_output=True)
            commands["dbmate up"] = f"{base} up"
            native = next(DBMATE.parent.parent.glob("@dbmate/*/bin/dbmate"), None)
            if native is not None:  # the Go binary itself, without the npm wrapper's node start-up
                commands["dbmate up (binary)"] = commands["dbmate up"].replace(str(DBMATE), str(native), 1)
        elif peers:
            notes.append(f"dbmate skipped: {DBMATE} missing (npm install --prefix"
                         " /var/cache/db-init-job/dbmate from bench/dbmate/package-lock.json)")
        for cmd in commands.values():  # each must really be a no-op before it is timed
            subprocess.run(shlex.split(cmd), env=env, check=True, capture_output=True)
        before = load()
        hf = hyperfine_rounds(commands, rounds=rounds, runs=runs, warmup=warmup, env=env)
        times = hf["times"]
        for name, cmd in commands.items():
            times[name] |= gnu_time(shlex.split(cmd), env, rss_repeat)
        floor = times["floor"]["median_ms"]
        job = times["job"]["median_ms"]
        result: dict[str, Any] = {
            "load_before": before, "load_after": load(), "rounds": rounds, "runs": runs, "warmup": warmup,
            "results": times, "job_over_floor": round_ratio(times, "job", "floor"),
            "job_over_floor_min": ratio(times["job"]["min_ms"], times["floor"]["min_ms"]),
            "job_minus_floor_ms": round(job - floor, 1),
            "job_minus_floor_min_ms": round(times["job"]["min_ms"] - times["floor"]["min_ms"], 1),
            "job_over_floor_cpu": ratio(times["job"]["cpu_ms"], times["floor"]["cpu_ms"]),
            "notes": notes}
        for name, key in (("prisma migrate deploy", "prisma_over_job"),
                          ("prisma 7 migrate deploy", "prisma7_over_job"), ("dbmate up", "dbmate_over_job"),
                          ("dbmate up (binary)", "dbmate_binary_over_job")):
            if name in times:
                result[key] = round_ratio(times, name, "job")
                result[key + "_min"] = ratio(times[name]["min_ms"], times["job"]["min_ms"])
        return result


def report(r: dict[str, Any]) -> None:
    print(f"no-op on an up-to-date database ({r['rounds']} rounds of {r['runs']} runs, order alternating;"
          f" {r['load_before']})")
    for name, t in r["results"].items():
        print(f"  {name:24} median {t['median_ms']:7.1f} ms  (min {t['min_ms']:7.1f})"
              f"  CPU {t['cpu_ms']:7.1f} ms  peak RSS {t['peak_rss_mb']:6.1f} MB")
    print(f"  job / floor = {r['job_over_floor']} (of minimums {r['job_over_floor_min']}; goal <= 1.3);"
          f" job - floor = {r['job_minus_floor_ms']} ms (of minimums {r['job_minus_floor_min_ms']})")
    print(f"  CPU time (user + sys): job / floor = {r['job_over_floor_cpu']}")
    for key, label in (("prisma_over_job", "prisma deploy / job (goal >= 4)"),
                       ("prisma7_over_job", "prisma 7 deploy / job"),
                       ("dbmate_over_job", "dbmate / job"),
                       ("dbmate_binary_over_job", "dbmate binary / job")):
        if key in r:
            print(f"  {label} = {r[key]} (of minimums {r[key + '_min']})")
    for note in r["notes"]:
        print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4, help="runs per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.runs, args.warmup, args.rounds)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
