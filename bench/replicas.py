"""Question 4: many replicas at once (10, 50, 100 processes), on a database that needs work and on an
up-to-date one.

    python bench/replicas.py [--counts 10,50,100]

Per batch: the slowest exit (all started together), every exit code, each migration applied once (the
ledger, and the `step.applied` events of all replicas), the lock holder's critical section (its
`lock.acquired` to `lock.released`), and, from pg_stat_statements (reset before the batch), statements
and server time (planning + execution). On the up-to-date database those are per replica; the round
trips of one no-op replica are counted on the wire (bench/roundtrips.py). Goals (issue 12): each
migration once; <= 3 round trips and <= 5 ms of server time per no-op replica; critical section <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    FLOOR,
    PY,
    ROOT,
    cluster,
    database,
    job_env,
    load,
    reset_stats,
    statement_stats,
    stats_available,
)
from roundtrips import count


def _events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def batch(pg: Any, state: str, n: int) -> dict[str, Any]:
    name, url = database(pg, state)
    stats = stats_available(pg, name)
    if stats:
        reset_stats(pg, name)
    env = job_env(url, DB_INIT_LOCK_TIMEOUT="300s", DB_INIT_CONNECT_TIMEOUT="120s")
    started = time.monotonic()
    procs = [subprocess.Popen([PY, "-m", "job", "run"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    exits, logs = [], []
    for p in procs:
        _, err = p.communicate(timeout=600)
        exits.append(time.monotonic() - started)
        logs.append(_events(err))
    codes = sorted({p.returncode for p in procs})
    applied: dict[str, int] = {}
    critical = []
    for events in logs:
        for e in events:
            if e.get("event") == "step.applied" and e.get("action") == "apply_migration":
                applied[e["migration"]] = applied.get(e["migration"], 0) + 1
        times = {e["event"]: datetime.fromisoformat(e["time"]) for e in events
                 if e.get("event") in ("lock.acquired", "lock.released")}
        if len(times) == 2:
            critical.append((times["lock.released"] - times["lock.acquired"]).total_seconds() * 1000)
    rows = statement_stats(pg, name) if stats else []
    with pg.admin(name) as conn:
        ledger = conn.execute("SELECT migration_name, count(*) FROM _prisma_migrations WHERE finished_at"
                              " IS NOT NULL AND rolled_back_at IS NULL GROUP BY 1").fetchall()
    result: dict[str, Any] = {
        "state": state, "replicas": n, "exit_codes": codes, "slowest_exit_s": round(max(exits), 2),
        "migrations_applied": applied, "ledger_rows_per_migration": dict(ledger),
        "each_migration_once": all(c == 1 for c in applied.values()) and all(c == 1 for _, c in ledger),
        "took_lock": len(critical),
        "critical_section_ms": round(max(critical), 1) if critical else None}
    if stats:
        calls = sum(r["calls"] for r in rows)
        ms = sum(r["ms"] for r in rows)
        result |= {"statements": calls, "server_ms": round(ms, 1),
                   "statements_per_replica": round(calls / n, 1), "server_ms_per_replica": round(ms / n, 2)}
        if state == "fixed":
            result["statements_of_all"] = rows[:20]
    return result


def roundtrips(pg: Any) -> dict[str, Any]:
    name, url = database(pg, "fixed")

    def via(port: int) -> str:
        return str(pg.url(name)).replace(f":{pg.port}/", f":{port}/")
    env = job_env(url)
    floor, _ = count([PY, str(FLOOR)], env, via, pg.port)
    job, sent = count([PY, "-m", "job", "run"], env, via, pg.port)
    return {"floor": floor, "job": job, "connect": floor - 1, "job_after_connect": job - (floor - 1),
            "job_requests": sent}


def measure(counts: list[int]) -> dict[str, Any]:
    with cluster() as pg:
        before = load()
        trips = roundtrips(pg)
        batches = [batch(pg, state, n) for n in counts for state in ("demo", "fixed")]
        return {"load_before": before, "load_after": load(), "roundtrips_noop": trips, "batches": batches}


def report(r: dict[str, Any]) -> None:
    t = r["roundtrips_noop"]
    print(f"many replicas ({r['load_before']})")
    print(f"  round trips of one no-op process: job {t['job']}, floor {t['floor']}"
          f" (connecting: {t['connect']});"
          f" job after connecting: {t['job_after_connect']} (goal <= 3)")
    for b in r["batches"]:
        what = "production break" if b["state"] == "demo" else "up to date"
        line = (f"  {b['replicas']:3} x {what:16} exits {b['exit_codes']}"
                f" slowest {b['slowest_exit_s']:6.2f} s;"
                f" each migration once: {b['each_migration_once']}; lock taken by {b['took_lock']}")
        if b["critical_section_ms"] is not None:
            line += f", critical section {b['critical_section_ms']} ms (goal <= 1000)"
        if "statements" in b:
            line += (f"; server: {b['statements_per_replica']} statements,"
                     f" {b['server_ms_per_replica']} ms per replica")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,50,100")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure([int(c) for c in args.counts.split(",")])
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
