"""Question 3: a fresh apply on an empty database, the job against the floor plus psql.

    python bench/fresh.py [--runs N] [--warmup N]

hyperfine, in one invocation, each run on a database dropped and created again by `--prepare`:
`python -m job run` against `bench/floor.py && psql --single-transaction -f all.sql`, where all.sql is
the migration files of prisma/migrations concatenated in name order (what the job applies; the job also
replays them once in a scratch schema to build the contract, and writes the ledger). Goal (issue 12): the
job <= 1.2x that sum. With ``peers`` (bench/pod_start.py), in the same invocation: Prisma 7's deploy
(where tests/interop/prisma7 is installed) and dbmate (bench/dbmate), each on the same fresh database.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from common import (
    DBMATE,
    MIGRATIONS,
    cluster,
    floor_cmd,
    hyperfine_rounds,
    job_cmd,
    job_env,
    load,
    peak_rss_mb,
    prisma7_cmd,
    prisma7_env,
    ratio,
    round_ratio,
)


def phases(url: str) -> dict[str, float]:
    """One job run's own timeline, from its log lines' `time`: ms after `run.started` of each event."""
    from datetime import datetime

    res = subprocess.run(shlex.split(job_cmd()), env=job_env(url), capture_output=True, text=True, check=True)
    events = [json.loads(ln) for ln in res.stderr.splitlines() if ln.startswith("{")]
    start = datetime.fromisoformat(events[0]["time"])
    out: dict[str, float] = {}
    for e in events:
        label = e["event"] + (f" {e['migration'][:14]}" if e.get("migration") else "")
        out[label] = round((datetime.fromisoformat(e["time"]) - start).total_seconds() * 1000, 1)
    out["duration_ms (run.finished)"] = float(events[-1]["duration_ms"])
    return out


def peer_commands(url: str, work: Path, prisma: bool = True) -> tuple[dict[str, str], list[str]]:
    """Prisma 7's deploy and dbmate on a fresh ``url``, as far as they are installed; notes for the rest."""
    from noop import dbmate_folder

    commands, notes = {}, []
    if prisma and (deploy7 := prisma7_cmd()) is not None:
        commands["prisma 7 migrate deploy"] = deploy7
    elif prisma:
        notes.append("prisma 7: not installed (tests/interop/prisma7, or BENCH_PRISMA7)")
    if DBMATE.exists():
        folder = dbmate_folder(work / "dbmate")
        commands["dbmate up"] = (f"{DBMATE} --url {shlex.quote(url + '?sslmode=disable')}"
                                 f" --migrations-dir {folder} --no-dump-schema up")
    else:
        notes.append(f"dbmate: not installed ({DBMATE})")
    return commands, notes


def measure(runs: int, warmup: int, rounds: int = 4, peers: bool = False, prisma: bool = True
            ) -> dict[str, Any]:
    psql = shutil.which("psql") or str(Path(__file__).parent / "missing-psql")
    sql_file = Path(tempfile.mkdtemp(prefix="bench-fresh-")) / "all.sql"
    sql_file.write_text("\n".join((d / "migration.sql").read_text()
                                  for d in sorted(p for p in MIGRATIONS.iterdir() if p.is_dir())))
    with cluster() as pg:
        name = "bench_fresh"
        url = pg.url(name)
        admin = f"{psql} -X -q -h {pg.socket_dir} -p {pg.port} -U postgres -d postgres"
        prepare = (f"{admin} -c 'DROP DATABASE IF EXISTS {name} WITH (FORCE)'"
                   f" -c 'CREATE DATABASE {name} STRATEGY = FILE_COPY'")
        commands = {"job": job_cmd(),
                    "floor + psql": f"{floor_cmd()} && {psql} -X -q -v ON_ERROR_STOP=1 --single-transaction"
                                    f" -d {shlex.quote(url)} -f {sql_file} >/dev/null"}
        notes: list[str] = []
        if peers:
            more, notes = peer_commands(url, sql_file.parent, prisma)
            commands |= more
        before = load()
        hf = hyperfine_rounds(commands, rounds=rounds, runs=runs, warmup=warmup,
                              env=job_env(url) | prisma7_env(), prepare=prepare, base="floor + psql")
        times = hf["times"]
        subprocess.run(prepare, shell=True, check=True)
        times["job"]["peak_rss_mb"] = peak_rss_mb(shlex.split(job_cmd()), job_env(url), repeat=1)
        subprocess.run(prepare, shell=True, check=True)
        timeline = phases(url)
    shutil.rmtree(sql_file.parent)
    job, base = times["job"]["median_ms"], times["floor + psql"]["median_ms"]
    return {"load_before": before, "load_after": load(), "rounds": rounds, "runs": runs, "warmup": warmup,
            "results": times, "job_over_floor_psql": round_ratio(times, "job", "floor + psql"),
            "job_over_floor_psql_min": ratio(times["job"]["min_ms"], times["floor + psql"]["min_ms"]),
            "job_minus_floor_psql_ms": round(job - base, 1), "job_timeline_ms": timeline, "notes": notes}


def report(r: dict[str, Any]) -> None:
    print(f"fresh apply on an empty database ({r['rounds']} rounds of {r['runs']} runs, order alternating;"
          f" {r['load_before']})")
    for name, t in r["results"].items():
        print(f"  {name:24} median {t['median_ms']:7.1f} ms  (min {t['min_ms']:7.1f})")
    print(f"  job / (floor + psql) = {r['job_over_floor_psql']} (of minimums {r['job_over_floor_psql_min']};"
          " goal <= 1.2);"
          f" job - (floor + psql) = {r['job_minus_floor_psql_ms']} ms")
    print("  one job run, ms after run.started:",
          ", ".join(f"{k} {v}" for k, v in r["job_timeline_ms"].items()))
    for note in r.get("notes", []):
        print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="runs per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.runs, args.warmup, args.rounds)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
