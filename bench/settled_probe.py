"""What the proposed no-op fast path would cost the server: the settled decision in one round trip.

    python bench/settled_probe.py [--processes N]

Not the job: a stand-in for the change proposed to job/database.py and job/run.py (bench/RESULTS.md,
"Proposals"). Each of ``N`` processes opens a fresh connection (a backend with cold catalog caches, as
each restarting pod gets) and sends, in one pipeline with one Sync and no transaction, the two queries
``settled()`` needs: the schema glance (version, recovery, read-only, backend pid for the pooler check,
schema, tables, any INVALID index, the constraints not validated, which `verify.notes` reports) and the
ledger. Measured exactly as the job is in replicas.py:
pg_stat_statements per process, round trips on the wire.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROBE = """
SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),
       current_setting('transaction_read_only') = 'on', pg_backend_pid(),
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s),
       coalesce(ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') ORDER BY 1), '{}'),
       EXISTS (SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = %(schema)s AND NOT x.indisvalid),
       coalesce(ARRAY(SELECT k.conname::text FROM pg_constraint k
                      JOIN pg_namespace n ON n.oid = k.connamespace
                      WHERE n.nspname = %(schema)s AND NOT k.convalidated ORDER BY 1), '{}')
"""
LEDGER = ("SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, applied_steps_count"
          ' FROM "public"."_prisma_migrations" ORDER BY started_at, migration_name')


def probe() -> None:
    """The stand-in process: connect as the job does, one pipelined round trip, close."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=None) as conn:
        with conn.pipeline():
            glance = conn.execute(PROBE, {"schema": "public"})
            ledger = conn.execute(LEDGER)
        glance.fetchall()
        ledger.fetchall()


def measure(processes: int) -> dict[str, Any]:
    from common import ROOT, cluster, database, job_env, reset_stats, statement_stats, stats_available
    from roundtrips import count

    me = [sys.executable, str(Path(__file__).resolve()), "--probe"]
    with cluster() as pg:
        name, url = database(pg, "fixed")
        env = job_env(url)
        result: dict[str, Any] = {}

        def via(port: int) -> str:
            return pg.url(name).replace(f":{pg.port}/", f":{port}/")
        floor, _ = count([sys.executable, str(ROOT / "bench" / "floor.py")], env, via, pg.port)
        trips, sent = count(me, env, via, pg.port)
        result["roundtrips_after_connect"] = trips - (floor - 1)
        result["requests"] = sent
        if stats_available(pg, name):
            reset_stats(pg, name)
            for _ in range(processes):
                subprocess.run(me, env=env, check=True)
            rows = statement_stats(pg, name)
            result |= {"processes": processes,
                       "statements_per_process": round(sum(r["calls"] for r in rows) / processes, 1),
                       "server_ms_per_process": round(sum(r["ms"] for r in rows) / processes, 2),
                       "statements": rows}
        return result


def report(r: dict[str, Any]) -> None:
    print(f"proposed settled probe: {r['roundtrips_after_connect']} round trip(s) after connecting;"
          f" {r.get('statements_per_process')} statements, {r.get('server_ms_per_process')} ms server time"
          f" per process (fresh backends, {r.get('processes')} processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.probe:
        probe()
        return
    r = measure(args.processes)
    report(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
