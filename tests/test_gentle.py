"""Gentle on big tables: indexes built beside live traffic, duplicates stopped with counts, the session
merge in batches that survive an interruption, and constraints left NOT VALID found again.

Real server, real job processes, real signals.  "Big" here is a table past the concurrent-build
threshold (job.heal.CONCURRENT_FROM_ROWS), ANALYZEd so the estimate is right; bench/gentle.py
measures the same at millions of rows.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from jobtools import MIGRATIONS_DIR, finish, parse_events, rows_by_table, run_job, start_job
from pgbouncer import PgBouncer, pgbouncer_binary
from pgcluster import Db
from psycopg import sql
from scenarios import BASELINE, STATES, add_sessions

from job.heal import CONCURRENT_FROM_ROWS

pytestmark = pytest.mark.slow
ROWS = CONCURRENT_FROM_ROWS * 2
BUILT = ("ProductProfile_tenantId_idx", "ProductProfile_tenantId_shopifyProductId_key")


def fill_products(conn: psycopg.Connection[Any], rows: int = ROWS, *, duplicates: int = 0) -> None:
    """``rows`` products of tenant t1; ``duplicates`` of them repeat another's shopifyProductId."""
    conn.execute(sql.SQL(
        'INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title", "updatedAt")'
        " SELECT 'big' || g, 't1', 'gid://big/' || CASE WHEN g <= {d} THEN g + {d} ELSE g END, 'Item ' || g,"
        " now() FROM generate_series(1, {n}) g").format(d=sql.Literal(duplicates), n=sql.Literal(rows)))
    conn.execute('ANALYZE "ProductProfile"')


def partial_big(db: Db, *, duplicates: int = 0) -> None:
    with db.connect() as conn:
        STATES["partial"](conn, "public", MIGRATIONS_DIR)
        fill_products(conn, duplicates=duplicates)


def fixed_with_key_not_valid(db: Db, *, orphan: bool = False) -> None:
    """Everything applied; "ProductProfile_tenantId_fkey" NOT VALID (with ``orphan``, a row breaks it)."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "ProductProfile" DROP CONSTRAINT "ProductProfile_tenantId_fkey"')
        if orphan:
            conn.execute('INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title",'
                         " \"updatedAt\") VALUES ('orphan', 'no-such-tenant', 'gid://o', 'x', now())")
        conn.execute('ALTER TABLE "ProductProfile" ADD CONSTRAINT "ProductProfile_tenantId_fkey" FOREIGN KEY'
                     ' ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE NOT VALID')


def indexes(conn: psycopg.Connection[Any], table: str) -> dict[str, bool]:
    return {name: valid for name, valid in conn.execute(
        "SELECT i.relname, x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass", (f'"{table}"',)).fetchall()}


def wait_for_build(db: Db, proc: Any, phase: str = "", timeout: float = 30) -> int:
    """The job's backend once pg_stat_progress_create_index shows it building (in ``phase``)."""
    deadline = time.monotonic() + timeout
    with db.connect() as admin:
        while time.monotonic() < deadline:
            row = admin.execute("SELECT p.pid FROM pg_stat_progress_create_index p JOIN pg_stat_activity a"
                                " ON a.pid = p.pid WHERE a.application_name = 'db-init-job'"
                                " AND p.phase LIKE %s", (f"%{phase}%",)).fetchone()
            if row:
                return int(row[0])
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
    raise AssertionError("the job never started a concurrent build")


@contextmanager
def old_snapshot(db: Db) -> Iterator[psycopg.Connection[Any]]:
    """A transaction holding a snapshot: a concurrent build waits for it in its last phase."""
    with db.connect() as old:
        old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old.execute('SELECT count(*) FROM "Plan"')
        yield old


def test_indexes_on_a_big_table_are_built_concurrently_while_app_writes_go_on(db: Db) -> None:
    partial_big(db)
    with old_snapshot(db) as old:  # the window to write in while the build goes on
        proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="20s")
        started = time.monotonic()
        wait_for_build(db, proc)
        with db.connect() as app:
            app.execute("SET statement_timeout = '1s'")  # a plain CREATE INDEX would make this wait
            app.execute('INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title",'
                        " \"updatedAt\") VALUES ('during', 't1', 'gid://during', 'x', now())")
            app.execute("SELECT * FROM \"ProductProfile\" WHERE id = 'big7'")
        old.execute("COMMIT")
        run = finish(proc, started)
    assert run.code == 0, run.stderr[-3000:]
    built = [e for e in run.events if e.get("action") == "create_index_concurrently"]
    assert {e["index"] for e in built} == set(BUILT)
    with db.connect() as conn:
        found = indexes(conn, "ProductProfile")
        assert all(found[name] for name in BUILT), found
        assert conn.execute("SELECT count(*) FROM \"ProductProfile\"").fetchone() == (ROWS + 3,)
    assert run_job(db.url, "verify").code in (0, 8)  # orphans of the partial state may remain NOT VALID


def test_a_build_killed_midway_leaves_an_invalid_index_the_next_run_rebuilds(db: Db) -> None:
    partial_big(db)
    with old_snapshot(db) as old:
        proc = start_job(db.url, DB_INIT_DDL_LOCK_TIMEOUT="30s")
        pid = wait_for_build(db, proc, "old snapshots")  # the index is in the catalog, INVALID
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        with db.connect() as admin:  # the server notices the dead client (client_connection_check_interval)
            deadline = time.monotonic() + 30
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline, "the server kept the dead job's backend"
                time.sleep(0.05)
        old.execute("COMMIT")
    with db.connect() as conn:
        left = indexes(conn, "ProductProfile")
        assert False in left.values(), left  # what an interrupted concurrent build leaves
    run = run_job(db.url)
    assert run.code == 0, run.stderr[-3000:]
    assert any(e.get("action") == "drop_invalid_index" for e in run.events)
    with db.connect() as conn:
        found = indexes(conn, "ProductProfile")
        assert all(found.values()) and set(BUILT) <= set(found), found
    again = run_job(db.url)
    assert again.code == 0 and not again.has("lock.acquired"), again.stderr[-2000:]


def test_duplicate_keys_under_a_unique_index_stop_the_run_with_counts_and_touch_no_row(db: Db) -> None:
    partial_big(db, duplicates=3)  # 3 keys held by two rows each
    with db.connect() as conn:
        before = rows_by_table(conn, "public")["ProductProfile"]
    run = run_job(db.url)
    assert run.code == 5, run.stderr[-3000:]
    reason = run.summary["reason"]
    assert '"ProductProfile_tenantId_shopifyProductId_key"' in reason and '"ProductProfile"' in reason
    assert "(tenantId, shopifyProductId): 3 keys are held by more than one row (6 rows)" in reason, reason
    assert BASELINE in reason and "\n" not in reason and "Traceback" not in run.stderr
    with db.connect() as conn:
        after = [json.loads(r) for r in rows_by_table(conn, "public")["ProductProfile"]]
        # Healing added the columns it could (null in every row); every value there before is unchanged.
        assert [{k: r[k] for k in json.loads(b)} for r, b in zip(after, before, strict=True)] == [
            json.loads(b) for b in before]
        assert "ProductProfile_tenantId_shopifyProductId_key" not in indexes(conn, "ProductProfile")
        assert all(indexes(conn, "ProductProfile").values())  # no INVALID index left behind
        assert not conn.execute("SELECT 1 FROM _prisma_migrations WHERE migration_name = %s"
                                " AND finished_at IS NOT NULL", (BASELINE,)).fetchall()


def test_duplicates_under_a_unique_index_of_a_recorded_migration_are_reported_not_fatal(db: Db) -> None:
    """Drift: `prisma migrate deploy` would succeed, so the run does too, and says what is wrong."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('DROP INDEX "ProductProfile_tenantId_shopifyProductId_key"')
        fill_products(conn, duplicates=2)
    run = run_job(db.url, DB_INIT_HEAL="always")
    assert run.code == 0, run.stderr[-3000:]
    skipped = run.event("heal.skipped")
    assert "2 keys are held by more than one row (4 rows)" in skipped["reason"]
    assert run_job(db.url, "verify").code == 8


def test_an_interrupted_batched_merge_copies_every_session_exactly_once(db: Db) -> None:
    with db.connect() as conn:
        STATES["both_populated"](conn, "public", MIGRATIONS_DIR)
        add_sessions(conn, "public", "session", 12_000, prefix="bulk", mark="old_")
        lower = {r[0]: r for r in conn.execute('SELECT * FROM "session"').fetchall()}
        upper = {r[0]: r for r in conn.execute('SELECT * FROM "Session"').fetchall()}
    proc = start_job(db.url, DB_INIT_LOG_LEVEL="debug")
    started = time.monotonic()
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"merge.batch"' in line:
            proc.send_signal(signal.SIGKILL)  # after its first batch committed
            break
    rest = finish(proc, started)
    assert rest.code == -signal.SIGKILL
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('session') IS NOT NULL").fetchone() == (True,)
        partway = conn.execute('SELECT count(*) FROM "Session"').fetchone()
        assert partway is not None and len(upper) < partway[0] < len(upper | lower)
    run = run_job(db.url)
    assert run.code == 0, run.stderr[-3000:]
    merged = next(e for e in run.events if e.get("action") == "merge_session_tables")
    assert merged["batches"] >= 1
    with db.connect() as conn:
        ids = [r[0] for r in conn.execute('SELECT id FROM "Session"').fetchall()]
        assert len(ids) == len(set(ids)) == len(set(upper) | set(lower))
        for sid, row in upper.items():  # on the same id, "Session"'s own row stays
            got = conn.execute('SELECT "accessToken" FROM "Session" WHERE id = %s', (sid,)).fetchone()
            assert got is not None and got[0] == row[6]
        kept = conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'session_merged_%'").fetchall()
        assert len(kept) == 1
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(kept[0][0]))
                            ).fetchone() == (len(lower),)


def _session_writer(db: Db, name: str, stop: threading.Event, committed: list[str]) -> None:
    """An old pod: inserts into "session" until it is gone; ``committed``: the ids whose COMMIT returned.

    Its ids sort before the bulk ("a-") and after it ("z-"): behind and ahead of the merge's batches."""
    with db.connect() as conn:
        n = 0
        while not stop.is_set():
            n += 1
            sid = f"{'az'[n % 2]}-{name}-{n}"
            try:
                conn.execute('INSERT INTO "session" ("id", "shop", "state", "isOnline", "accessToken")'
                             " VALUES (%s, 'late.myshopify.com', 's', false, 'shpat_late')", (sid,))
            except psycopg.errors.UndefinedTable:
                return  # renamed aside: the merge is over
            committed.append(sid)


def test_no_row_written_to_session_during_the_merge_is_lost(db: Db) -> None:
    """Old pods insert into "session" before, during and after the batches: every row whose INSERT
    committed ends in "Session" (the last transaction stops writes, copies what is missing, renames)."""
    with db.connect() as conn:
        STATES["both_populated"](conn, "public", MIGRATIONS_DIR)
        add_sessions(conn, "public", "session", 12_000, prefix="bulk", mark="old_")
    stop, committed = threading.Event(), [list[str]() for _ in range(3)]
    writers = [threading.Thread(target=_session_writer, args=(db, f"w{i}", stop, ids), daemon=True)
               for i, ids in enumerate(committed)]
    for w in writers:
        w.start()
    try:
        run = run_job(db.url, DB_INIT_LOG_LEVEL="debug")
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=30)
    assert run.code == 0, run.stderr[-3000:]
    merged = next(e for e in run.events if e.get("action") == "merge_session_tables")
    written = {sid for ids in committed for sid in ids}
    with db.connect() as conn:
        kept = {r[0] for r in conn.execute('SELECT id FROM "Session"').fetchall()}
    assert len(written) > 100 and merged["batches"] >= 2
    assert sorted(written - kept) == [], f"{len(written - kept)} of {len(written)} written rows lost"


def test_a_constraint_left_not_valid_by_a_stopped_run_is_validated_by_the_next(db: Db) -> None:
    fixed_with_key_not_valid(db)  # what a run killed between adding a key NOT VALID and validating it leaves
    run = run_job(db.url)
    assert run.code == 0, run.stderr[-3000:]
    with db.connect() as conn:
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname ="
                            " 'ProductProfile_tenantId_fkey'").fetchone() == (True,)
    again = run_job(db.url)
    assert again.code == 0 and not again.has("lock.acquired")


def test_rows_that_break_a_constraint_are_counted_once_then_left_until_heal_always(db: Db) -> None:
    with db.connect() as conn:
        STATES["partial"](conn, "public", MIGRATIONS_DIR)  # orphan rows: a product and a tenant
    first = run_job(db.url)
    assert first.code == 0, first.stderr[-3000:]
    refused = [e for e in first.events if e.get("event") == "fk.not_validated"]
    assert {e["constraint"] for e in refused} == {"ProductProfile_tenantId_fkey", "Tenant_planId_fkey"}
    with db.connect() as conn:
        marks: dict[str, str] = dict(conn.execute(
            "SELECT conname, obj_description(oid, 'pg_constraint') FROM pg_constraint"
            " WHERE NOT convalidated").fetchall())
        assert all(m.startswith("db-init: not validated on ") and "1 row breaks it" in m
                   for m in marks.values()), marks
    quiet = run_job(db.url)  # a pod start: one glance, no lock, no scan
    assert quiet.code == 0 and not quiet.has("lock.acquired") and not quiet.has("fk.not_validated")
    with db.connect() as conn:
        conn.execute("DELETE FROM \"ProductProfile\" WHERE \"tenantId\" = 'no-such-tenant'")
    always = run_job(db.url, DB_INIT_HEAL="always")
    assert always.code == 0, always.stderr[-3000:]
    with db.connect() as conn:
        rows = conn.execute("SELECT convalidated, obj_description(oid, 'pg_constraint') FROM pg_constraint"
                            " WHERE conname = 'ProductProfile_tenantId_fkey'").fetchall()
        assert rows == [(True, None)]  # validated, and the job's comment taken off


SLOW_PLANS = ("enable_hashjoin", "enable_mergejoin", "enable_indexscan", "enable_indexonlyscan",
              "enable_bitmapscan")


def slow_key_not_valid(db: Db, *, orphan: bool) -> None:
    """A foreign key whose scans (VALIDATE's, the orphan count's) last seconds on 25,000 rows: each
    product's tenant is the last of 4,001 and the database plans only nested loops over plain scans;
    with ``orphan``, the first row stored points nowhere (VALIDATE stops there, the count goes on)."""
    fixed_with_key_not_valid(db)
    with db.connect() as conn:
        conn.execute('ALTER TABLE "ProductProfile" DROP CONSTRAINT "ProductProfile_tenantId_fkey"')
        tenants = ('INSERT INTO "Tenant" ("id", "shop", "updatedAt")'
                   " SELECT %s || g, %s || g, now() FROM generate_series(%s::int, %s::int) g")
        conn.execute(tenants, ("pad", "pad.shop", 1, 4000))
        conn.execute(tenants, ("last", "last.shop", 0, 0))
        products = ('INSERT INTO "ProductProfile" ("id", "tenantId", "shopifyProductId", "title",'
                    ' "updatedAt") SELECT \'p\' || g, %s, \'gid://p/\' || g, \'Item\', now()'
                    " FROM generate_series(%s::int, %s::int) g")
        if orphan:
            conn.execute(products, ("no-such-tenant", 0, 0))
        conn.execute(products, ("last0", 1, 25_000))
        conn.execute('ALTER TABLE "ProductProfile" ADD CONSTRAINT "ProductProfile_tenantId_fkey" FOREIGN KEY'
                     ' ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE NOT VALID')
        for setting in SLOW_PLANS:
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = off").format(sql.Identifier(db.name),
                                                                        sql.Identifier(setting)))


def test_a_validation_that_outlasts_statement_timeout_is_not_cut_by_it(db: Db) -> None:
    """VALIDATE blocks no app query: it runs to its end (here ~2 s past a 1 s statement_timeout), so the
    next pod start finds nothing to do instead of scanning the table again, forever."""
    slow_key_not_valid(db, orphan=False)
    run = run_job(db.url, DB_INIT_STATEMENT_TIMEOUT="1s")
    assert run.code == 0, run.stderr[-3000:]
    assert not run.has("fk.not_validated")
    assert next(e for e in run.events if e.get("action") == "validate_constraint")
    with db.connect() as conn:
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname ="
                            " 'ProductProfile_tenantId_fkey'").fetchone() == (True,)
    again = run_job(db.url, DB_INIT_STATEMENT_TIMEOUT="1s")
    assert again.code == 0 and not again.has("lock.acquired")  # the glance: settled


def test_an_orphan_count_that_outlasts_statement_timeout_is_not_counted_and_marked(db: Db) -> None:
    """The count scans the table too: bounded by statement_timeout, and the log says it was not counted
    (not "0 rows"); the constraint is marked, so later pod starts do not scan it again."""
    slow_key_not_valid(db, orphan=True)
    started = time.monotonic()
    run = run_job(db.url, DB_INIT_STATEMENT_TIMEOUT="1s")
    assert run.code == 0, run.stderr[-3000:]
    refused = run.event("fk.not_validated")
    assert refused["sqlstate"] == "23503" and refused["orphan_rows"] is None
    assert "not counted" in refused["note"] and run.summary["orphan_rows"] is None
    assert time.monotonic() - started < 30
    with db.connect() as conn:
        mark = conn.execute("SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname ="
                            " 'ProductProfile_tenantId_fkey'").fetchone()
        assert mark is not None and "existing rows break it (not counted)" in mark[0]
    quiet = run_job(db.url, DB_INIT_STATEMENT_TIMEOUT="1s")
    assert quiet.code == 0 and not quiet.has("lock.acquired") and not quiet.has("fk.not_validated")


def test_a_comment_of_someone_elses_is_never_overwritten(db: Db) -> None:
    fixed_with_key_not_valid(db, orphan=True)
    with db.connect() as conn:
        conn.execute('COMMENT ON CONSTRAINT "ProductProfile_tenantId_fkey" ON "ProductProfile" IS \'ours\'')
    run = run_job(db.url)
    assert run.code == 0, run.stderr[-3000:]
    assert run.event("fk.not_validated")["orphan_rows"] == 1
    with db.connect() as conn:
        assert conn.execute("SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname ="
                            " 'ProductProfile_tenantId_fkey'").fetchone() == ("ours",)


@pytest.mark.skipif(pgbouncer_binary() is None and os.environ.get("CI") != "true",
                    reason="pgbouncer is not installed (apt-get install pgbouncer)")
def test_behind_a_transaction_pooler_the_lock_spans_the_concurrent_builds(db: Db) -> None:
    partial_big(db)
    with PgBouncer(db.cluster, "transaction") as bouncer:
        run = run_job(bouncer.url(db.name))
    assert run.code == 0, run.stderr[-3000:]
    assert run.event("db.pooler")["lock_scope"] == "transaction"
    assert {e["index"] for e in run.events if e.get("action") == "create_index_concurrently"} == set(BUILT)
    with db.connect() as conn:
        found = indexes(conn, "ProductProfile")
        assert all(found[name] for name in BUILT), found


def test_plan_shows_the_concurrent_builds_without_running_them(db: Db) -> None:
    partial_big(db)
    run = run_job(db.url, "plan")
    assert run.code == 0, run.stderr[-3000:]
    assert "CONCURRENTLY" in run.stdout and "ProductProfile_tenantId_idx" in run.stdout
    with db.connect() as conn:
        assert not set(BUILT) & set(indexes(conn, "ProductProfile"))
    assert parse_events(run.stderr)
