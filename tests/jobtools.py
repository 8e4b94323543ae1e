"""Run the real job as a subprocess and read what it leaves behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "prisma" / "migrations"
CONTRACT_FILE = ROOT / "prisma" / "schema.prisma"


@dataclass
class JobRun:
    code: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, name: str) -> dict[str, Any]:
        return next(e for e in self.events if e.get("event") == name)

    def has(self, name: str) -> bool:
        return any(e.get("event") == name for e in self.events)

    @property
    def summary(self) -> dict[str, Any]:
        return self.event("run.finished")


def job_env(url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DB_INIT_") and k not in ("DATABASE_URL", "DIRECT_URL")}
    env |= {"DB_INIT_LOG_FORMAT": "json", "DB_INIT_CONNECT_TIMEOUT": "10s",
            "DB_INIT_LOCK_TIMEOUT": "10s", "PYTHONPATH": str(ROOT)}
    if url is not None:
        env["DATABASE_URL"] = url
    return env | extra


def start_job(url: str | None, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "job", *args], cwd=ROOT, env=job_env(url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def parse_events(stderr: str) -> list[dict[str, Any]]:
    """The job's log lines; a line that is not JSON is kept as such, for the tests to flag."""
    events = []
    for line in stderr.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"event": "<not json>", "line": line})
    return events


def finish(proc: subprocess.Popen[str], started: float, timeout: float = 120) -> JobRun:
    out, err = proc.communicate(timeout=timeout)
    return JobRun(proc.returncode, out, err, time.monotonic() - started, parse_events(err))


_JOB_SESSIONS = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'db-init-job'"
                 " AND datname = current_database()")


def job_sessions(db: Any) -> int:
    """The job's connections to the test database (a pgcluster.Db)."""
    with db.connect() as admin:
        return len(admin.execute(_JOB_SESSIONS).fetchall())


def wait_for_job_session(db: Any, timeout: float = 30) -> int:
    """Bounded poll until the job's connection shows in pg_stat_activity; its pid."""
    deadline = time.monotonic() + timeout
    with db.connect() as admin:
        while time.monotonic() < deadline:
            row = admin.execute(_JOB_SESSIONS).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("the job never connected")


def run_job(url: str | None, *args: str, **env: str) -> JobRun:
    started = time.monotonic()
    return finish(start_job(url, *args, **env), started)


def rows_by_table(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[str]]:
    """Every row of every table in the schema, as sorted JSON: compared before and after a run."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", (schema,))]
    out = {}
    for t in tables:
        rows = conn.execute(sql.SQL("SELECT to_jsonb(x)::text FROM {} x").format(sql.Identifier(schema, t)))
        out[t] = sorted(r[0] for r in rows)
    return out


def ledger(conn: psycopg.Connection[Any], schema: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql.SQL("SELECT to_jsonb(l) FROM {} l ORDER BY started_at, migration_name").format(
        sql.Identifier(schema, "_prisma_migrations")))
    return [r[0] for r in cur]


def all_schemas_fingerprint(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Catalog entries of every schema but the system ones: to prove nothing outside the target moved."""
    return conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2").fetchall()
