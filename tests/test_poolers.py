"""Behind a real PgBouncer, in session and in transaction mode: correct, and never half-applied."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR, finish, run_job, start_job
from pgbouncer import PgBouncer, PoolMode, pgbouncer_binary
from pgcluster import Db, PgCluster
from scenarios import STATES
from test_exit_codes import assert_clean_failure
from test_run import check_contract, check_ledger, race_a_row_into_the_empty_session

from job.dburl import parse_database_url
from job.migrations import load_migrations
from job.statements import PRISMA_LOCK_KEY

if pgbouncer_binary() is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must have pgbouncer (apt-get install pgbouncer)")
    pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)", allow_module_level=True)


@pytest.fixture(scope="module", params=["session", "transaction"])
def bouncer(request: pytest.FixtureRequest, pg: PgCluster) -> Iterator[PgBouncer]:
    mode: PoolMode = request.param
    with PgBouncer(pg, mode) as b:
        yield b


def test_the_job_works_through_the_pooler(db: Db, bouncer: PgBouncer) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    run = run_job(bouncer.url(db.name))
    assert run.code == 0, run.stderr
    # Detected without any hint in the URL: PgBouncer announces its own backend key.
    assert run.event("db.pooler")["lock_scope"] == "transaction"
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")
    again = run_job(bouncer.url(db.name, "?pgbouncer=true"))
    assert again.code == 0 and again.summary["changed"] is False


def test_a_row_written_to_the_empty_session_during_its_drop_is_merged_through_the_pooler(
        db: Db, bouncer: PgBouncer) -> None:
    race_a_row_into_the_empty_session(db, bouncer.url(db.name))


def test_racing_replicas_through_the_pooler_apply_exactly_once(db: Db, bouncer: PgBouncer) -> None:
    with db.connect() as conn:
        STATES["lowercase"](conn, "public", MIGRATIONS_DIR)
    started = time.monotonic()
    procs = [start_job(bouncer.url(db.name), DB_INIT_LOCK_TIMEOUT="60s") for _ in range(8)]
    procs.append(start_job(db.url, DB_INIT_LOCK_TIMEOUT="60s"))  # and one replica connected directly
    runs = [finish(p, started) for p in procs]
    assert [r.code for r in runs] == [0] * 9, [r.stderr for r in runs if r.code][:1]
    # Behind a pooler the lock lasts one transaction, so replicas may share the work between them:
    # what must hold is that every step is done exactly once.
    done = sorted((e["action"], e.get("migration")) for r in runs for e in r.events
                  if e.get("event") == "step.applied")
    assert done == [("apply_migration", "20251213003742_fix_session_table_uppercase"),
                    ("rename_session_table", None)], done
    # Each run reports what it committed: a migration another runner applied is named by that runner only.
    reported = sorted(m for r in runs for m in r.summary["migrations_applied"])
    assert reported == ["20251213003742_fix_session_table_uppercase"], reported
    with db.connect() as conn:
        check_contract(conn, "public")
        check_ledger(conn, "public")


def test_a_prisma_style_session_lock_holder_blocks_the_pooled_job(db: Db, bouncer: PgBouncer) -> None:
    with psycopg.connect(db.url, autocommit=True, application_name="prisma-migrate") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_KEY,))
        run = run_job(bouncer.url(db.name), DB_INIT_LOCK_TIMEOUT="1.5s")
    assert_clean_failure(run, 4, "migration lock still held", "prisma-migrate")
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('_prisma_migrations')").fetchone() == (None,)


def test_a_failing_migration_through_the_pooler_rolls_back_itself_and_names_the_rest(
        db: Db, bouncer: PgBouncer, tmp_path: object) -> None:
    import shutil
    from pathlib import Path

    folder = Path(str(tmp_path)) / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "20260101000000_broken").mkdir()
    (folder / "20260101000000_broken" / "migration.sql").write_text("SELECT 1/0;\n")
    run = run_job(bouncer.url(db.name), DB_INIT_MIGRATIONS_DIR=str(folder))
    shipped = [m.name for m in load_migrations(MIGRATIONS_DIR)]
    assert_clean_failure(run, 6, "22012", "committed before it: repairs, " + ", ".join(shipped))
    with db.connect() as conn:  # each migration is its own unit, as with Prisma: the broken one left no row
        names = [r[0] for r in conn.execute("SELECT migration_name FROM _prisma_migrations ORDER BY 1")]
        assert names == shipped


def test_supabase_transaction_pooler_is_recognised_from_the_url() -> None:
    pooled = parse_database_url("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres")
    session = parse_database_url("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres")
    assert pooled.pgbouncer and not session.pgbouncer
