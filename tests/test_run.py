"""The whole job against a real PostgreSQL, from each production state of HISTORY.md."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from catalogjson import load_contract
from jobtools import (
    MIGRATIONS_DIR,
    all_schemas_fingerprint,
    finish,
    ledger,
    rows_by_table,
    run_job,
    start_job,
)
from pgcluster import Db
from scenarios import STATES

from job.app_history import RETIRED
from job.database import Database
from job.migrations import load_migrations
from job.schemadiff import diff_catalogs

CONTRACT = load_contract()
SHIPPED = load_migrations(MIGRATIONS_DIR)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
KEPT = f"session_merged_{datetime.now(UTC):%Y%m%d}"
# Tables a state leaves on purpose beside the contract.
EXTRA = {"ahead": frozenset({"Wishlist"}), "both_populated": frozenset({KEPT}),
         "partial_both": frozenset({KEPT})}
# Rows whose foreign key points at nothing, built into a state on purpose.
ORPHANS = {"partial": 2, "partial_both": 2}


def schema_url(db: Db, schema: str) -> str:
    return db.url if schema == "public" else f"{db.url}?schema={schema}"


def check_contract(conn: Any, schema: str, extra: frozenset[str] = frozenset()) -> None:
    diffs = diff_catalogs(CONTRACT, Database(conn).describe(schema),
                          allowed_extra_tables=extra | {"_prisma_migrations"})
    assert diffs == []


def check_ledger(conn: Any, schema: str) -> None:
    rows = ledger(conn, schema)
    assert not [r for r in rows if r["finished_at"] is None and r["rolled_back_at"] is None], "a failed row"
    for m in SHIPPED:
        applied = [r for r in rows if r["migration_name"] == m.name and r["rolled_back_at"] is None]
        assert len(applied) == 1, f"{m.name} recorded {len(applied)} times"
        r = applied[0]
        assert r["checksum"] == m.checksum
        assert UUID4.match(r["id"])
        assert r["finished_at"] is not None and r["finished_at"] >= r["started_at"]
    for r in rows:
        if r["migration_name"] in RETIRED and r["rolled_back_at"] is not None:
            assert r["finished_at"] is None  # only failed rows are closed


def _projections(rows: list[str], keys: frozenset[str]) -> set[str]:
    return {json.dumps({k: v for k, v in json.loads(r).items() if k in keys}, sort_keys=True) for r in rows}


def rows_kept(before: dict[str, list[str]], after: dict[str, list[str]]) -> None:
    """Every row that existed is still there, with every value it had (columns may have been added).

    A lowercase "session" row may now live in "Session" or in the dated copy of the old table.
    """
    for table, rows in before.items():
        if table == "_prisma_migrations":
            continue  # rows are closed or added, never removed: checked by check_ledger
        homes = [table] if table != "session" else ["Session", "session", KEPT]
        for r in rows:
            keys = frozenset(json.loads(r))
            wanted = json.dumps(json.loads(r), sort_keys=True)
            assert any(wanted in _projections(after.get(h, []), keys) for h in homes), \
                f"row lost from {table}: {r}"


@pytest.mark.parametrize("schema", ["public", "shop_app"])
@pytest.mark.parametrize("state", sorted(STATES))
def test_state_ends_in_the_contract_and_a_second_run_changes_nothing(db: Db, state: str, schema: str) -> None:
    with db.connect() as conn:
        STATES[state](conn, schema, MIGRATIONS_DIR)
        before, outside = rows_by_table(conn, schema), all_schemas_fingerprint(conn)
        untouched = {k: v for k, v in rows_by_table(conn, "auth").items()}

    first = run_job(schema_url(db, schema))
    assert first.code == 0, first.stderr
    assert first.summary["outcome"] == "ok"
    assert first.summary["orphan_rows"] == ORPHANS.get(state, 0)

    with db.connect() as conn:
        check_contract(conn, schema, EXTRA.get(state, frozenset()))
        check_ledger(conn, schema)
        after = rows_by_table(conn, schema)
        rows_kept(before, after)
        assert rows_by_table(conn, "auth") == untouched
        moved = [e for e in all_schemas_fingerprint(conn) if e[0] != schema]
        assert moved == [e for e in outside if e[0] != schema], "something outside the target schema changed"

    second = run_job(schema_url(db, schema))
    assert second.code == 0
    assert second.summary["changed"] is False and second.summary["migrations_applied"] == []
    assert not second.has("lock.acquired"), "a no-op run must not take the lock"
    with db.connect() as conn:
        assert rows_by_table(conn, schema) == after

    verify = run_job(schema_url(db, schema), "verify", *(["--allow-extra"] if state in EXTRA else []))
    assert verify.code == 0, verify.stdout
    assert "matches the contract" in verify.stdout


@pytest.mark.parametrize("state", sorted(STATES))
def test_plan_shows_what_run_does_and_changes_nothing(db: Db, state: str) -> None:
    with db.connect() as conn:
        STATES[state](conn, "public", MIGRATIONS_DIR)
        before, catalog = rows_by_table(conn, "public"), all_schemas_fingerprint(conn)
    shown = run_job(db.url, "plan", "--json")
    assert shown.code == 0, shown.stderr
    planned = json.loads(shown.stdout)
    with db.connect() as conn:
        assert rows_by_table(conn, "public") == before and all_schemas_fingerprint(conn) == catalog
    run = run_job(db.url)
    assert run.code == 0, run.stderr
    kinds = ("step.applied", "ledger.failed_row_closed", "fk.not_validated")
    done = [e["action"] for e in run.events if e["event"] in kinds]
    assert done == [s["action"] for s in planned["steps"]] + [s["action"] for s in planned["after_commit"]]


def test_first_run_reports_what_it_did(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
    run = run_job(db.url)
    s = run.summary
    assert s["exit_code"] == 0 and s["changed"] is True
    assert s["migrations_applied"] == [m.name for m in SHIPPED]
    assert s["ledger_rows_repaired"] == 1
    closed = run.event("ledger.failed_row_closed")
    assert closed["migration"] == "20251008130439_update_for_new_pricing"
    assert run.has("lock.acquired") and run.has("lock.released")


def test_both_session_tables_populated_are_merged_and_session_wins_on_shared_ids(db: Db) -> None:
    with db.connect() as conn:
        STATES["both_populated"](conn, "public", MIGRATIONS_DIR)
        lower = conn.execute('SELECT count(*) FROM "session"').fetchone()
        tokens = 'SELECT id, "accessToken" FROM "Session"'
        upper_before: dict[str, str] = dict(conn.execute(tokens).fetchall())
    run = run_job(db.url)
    assert run.code == 0, run.stderr
    merged = next(e for e in run.events if e.get("action") == "merge_session_tables")
    assert merged["rows_in_session"] == 25 and merged["rows_in_Session"] == 8
    assert merged["shared_ids"] == 5 and merged["rows_copied"] == 20 and merged["kept_as"] == KEPT
    with db.connect() as conn:
        after: dict[str, str] = dict(conn.execute(tokens).fetchall())
        assert len(after) == 28
        for sid, token in upper_before.items():
            assert after[sid] == token  # "Session"'s own row won
        kept = conn.execute(f'SELECT count(*) FROM "{KEPT}"').fetchone()
        assert kept == lower  # the old table, whole, under its dated name


def race_a_row_into_the_empty_session(db: Db, url: str) -> None:
    """both_lower_empty; an old pod's INSERT into "session", committed while the job waits to lock it for
    the drop. The guard finds the row under its lock and refuses; the job plans again within its lock
    budget: "session" now holds a row, so it is merged into "Session" (a retry that succeeds)."""
    with db.connect() as conn:
        STATES["both_lower_empty"](conn, "public", MIGRATIONS_DIR)
    with db.cluster.admin(db.name) as writer, db.connect() as watcher:
        writer.autocommit = False
        writer.execute('INSERT INTO "session" ("id", "shop", "state", "isOnline", "accessToken") VALUES'
                       " ('offline_late.myshopify.com', 'late.myshopify.com', 's', false, 'shpat_late')")
        started = time.monotonic()
        proc = start_job(url)
        deadline = time.monotonic() + 30
        while not watcher.execute("SELECT 1 FROM pg_locks WHERE NOT granted"
                                  " AND relation = 'public.session'::regclass").fetchone():
            assert time.monotonic() < deadline and proc.poll() is None, "the job never waited for session"
            time.sleep(0.02)
        writer.commit()
        run = finish(proc, started)
    assert run.code == 0, run.stderr[-3000:]
    assert run.event("apply.replan")["sqlstate"] == "55006"
    assert not any(e.get("action") == "drop_empty_session" for e in run.events)
    assert next(e for e in run.events if e.get("action") == "merge_session_tables")["rows_copied"] == 1
    with db.connect() as conn:
        assert conn.execute('SELECT "accessToken" FROM "Session" WHERE id = \'offline_late.myshopify.com\''
                            ).fetchone() == ("shpat_late",)
        assert conn.execute("SELECT to_regclass('session'), to_regclass(%s) IS NOT NULL", (KEPT,)
                            ).fetchone() == (None, True)


def test_a_row_written_to_the_empty_session_during_its_drop_is_merged_not_fatal(db: Db) -> None:
    race_a_row_into_the_empty_session(db, db.url)


def test_plan_prints_the_steps_and_changes_nothing(db: Db) -> None:
    with db.connect() as conn:
        STATES["demo"](conn, "public", MIGRATIONS_DIR)
        before = rows_by_table(conn, "public")
    run = run_job(db.url, "plan")
    assert run.code == 0
    assert 'ALTER TABLE "public"."session" RENAME TO "Session"' in run.stdout
    assert 'CREATE TABLE IF NOT EXISTS "Tenant"' in run.stdout
    with db.connect() as conn:
        assert rows_by_table(conn, "public") == before
    assert run_job(db.url, "plan", "--json").stdout.count('"action"') == 4
