"""``db-init demo``: the production break, fixed before your eyes, on a throwaway PostgreSQL.

pgserver ships PostgreSQL in a wheel, so this needs nothing installed but Python.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from job.config import _migrations_dir
from job.scenarios import state_demo

SCHEMA = "public"


def run_demo() -> int:
    import pgserver

    from job.cli import main

    migrations_dir = _migrations_dir("prisma/migrations")
    with tempfile.TemporaryDirectory(prefix="db-init-demo-") as tmp:
        server = pgserver.get_server(  # type: ignore[attr-defined]
            Path(tmp), cleanup_mode="stop")
        with psycopg.connect(server.get_uri(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE shop")
        url = server.get_uri("shop")
        with psycopg.connect(url, autocommit=True) as conn:
            state_demo(conn, SCHEMA, migrations_dir)
            _show("BEFORE: the broken production database", conn)
        print("\n== running: db-init run  (DATABASE_URL points at the throwaway server)\n", flush=True)
        os.environ["DATABASE_URL"] = url
        code = main(["--log-format", "console", "run"])
        with psycopg.connect(url, autocommit=True) as conn:
            _show(f"AFTER: exit code {code}", conn)
        print("\n== db-init verify: the database against the migrations folder\n", flush=True)
        code2 = main(["--log-format", "console", "verify"])
        server.cleanup()
    return 0 if code == code2 == 0 else 1


def _show(title: str, conn: psycopg.Connection[Any]) -> None:
    print(f"\n== {title}")
    tables = [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE nspname = %s AND relkind = 'r' ORDER BY relname", (SCHEMA,))]
    print(f"tables ({len(tables)}): {', '.join(tables)}")
    for name in ("session", "Session"):
        if name in tables:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name)))
            print(f'rows in "{name}": {n.fetchone()[0]}')  # type: ignore[index]
    if "_prisma_migrations" in tables:
        print("_prisma_migrations:")
        for name, finished, rolled_back in conn.execute(
                "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL"
                " FROM _prisma_migrations ORDER BY started_at, migration_name"):
            status = "rolled back" if rolled_back else "applied" if finished else "FAILED (P3009)"
            print(f"  {name:55} {status}")
