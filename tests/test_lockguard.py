"""Lock estimates against a real server: the warning in `plan` and before `run`, the opt-in guard (exit 5,
nothing applied), the run as written without it, and a no-op that still costs one round trip.

A big table is a few thousand rows, ANALYZEd, under a threshold lowered to match: the job reads the same
statistics (reltuples) for a thousand rows as for a hundred million.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jobtools import MIGRATIONS_DIR, ROOT, JobRun, job_env, ledger, run_job
from pgcluster import Db
from scenarios import STATES

from job.config import load_config
from job.errors import ConfigError

sys.path.insert(0, str(ROOT / "bench"))
from roundtrips import count  # bench/ is not a package: the wire counter behind README's figures

ROWS = 3000
INDEX = "20260301000000_event_type_index"
COLUMN = "20260301000100_tenant_note"
INDEX_SQL = '-- CreateIndex\nCREATE INDEX "Event_type_idx" ON "Event"("type");\n'
COLUMN_SQL = 'ALTER TABLE "Tenant" ADD COLUMN "note" TEXT;\n'


def folder(tmp_path: Path, extra: dict[str, str]) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    for name, text in extra.items():
        (target / name).mkdir()
        (target / name / "migration.sql").write_text(text, encoding="utf-8")
    return target


def big_event_table(db: Db, *, analyze: bool = True) -> None:
    """The app's schema up to date, and "Event" with ROWS rows."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('INSERT INTO "Event" (id, shop, type) SELECT \'e\' || g, \'shop\', \'t\' || (g %% 7)'
                     " FROM generate_series(1, %s) g", (ROWS,))
        if analyze:
            conn.execute('ANALYZE "Event"')


def job(db: Db, migrations: Path, *args: str, **env: str) -> JobRun:
    return run_job(db.url, *args, DB_INIT_MIGRATIONS_DIR=str(migrations), **env)


def risks(run: JobRun) -> list[dict[str, Any]]:
    return [e for e in run.events if e.get("event") == "migration.lock_risk"]


def index_exists(db: Db, name: str) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{name}"',)).fetchone() == (True,)


def test_plan_and_run_warn_before_a_write_blocking_index_build_on_a_big_table(db: Db, tmp_path: Path) -> None:
    big_event_table(db)
    migrations = folder(tmp_path, {INDEX: INDEX_SQL})
    plan = job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert plan.code == 0, plan.stderr
    assert f'line 2: CREATE INDEX "Event_type_idx" ON "Event"("type"): SHARE on "Event" (~{ROWS:,} rows):' \
           " blocks writes while it builds an index" in plan.stdout
    assert "-- lock risk: line 2: builds an index without CONCURRENTLY" in plan.stdout
    [risk] = risks(plan)
    assert risk["severity"] == "WARNING" and risk["verdict"] == "warn"
    assert {k: risk[k] for k in ("migration", "line", "table", "rows", "lock", "blocks", "duration")} == {
        "migration": INDEX, "line": 2, "table": "Event", "rows": ROWS, "lock": "SHARE", "blocks": "writes",
        "duration": "builds an index"}
    assert "CREATE INDEX CONCURRENTLY" in risk["advice"] and "without CONCURRENTLY" in risk["reason"]

    as_json = job(db, migrations, "plan", "--json", DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert '"verdict": "warn"' in as_json.stdout and '"rows": 3000' in as_json.stdout

    run = job(db, migrations, DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert run.code == 0, run.stderr
    names = [e["event"] for e in run.events]
    assert names.index("migration.lock_risk") < names.index("lock.acquired") < names.index("step.applied")
    assert run.summary["migrations_applied"] == [INDEX] and index_exists(db, "Event_type_idx")


def test_the_guard_refuses_before_anything_is_applied_exit_5(db: Db, tmp_path: Path) -> None:
    big_event_table(db)
    migrations = folder(tmp_path, {INDEX: INDEX_SQL, COLUMN: COLUMN_SQL})
    with db.connect() as conn:
        before = ledger(conn, "public")
    guard = {"DB_INIT_WARN_BLOCKING_ROWS": "1000", "DB_INIT_REFUSE_BLOCKING_ROWS": "2000"}

    run = job(db, migrations, **guard)
    assert run.code == 5, run.stderr
    reason = run.summary["reason"]
    assert reason.startswith(f'{INDEX}/migration.sql line 2: CREATE INDEX "Event_type_idx" ON "Event"'
                             f'("type") takes SHARE on "Event" (~{ROWS:,} rows) and blocks writes while it'
                             " builds an index")
    assert "DB_INIT_REFUSE_BLOCKING_ROWS is 2000, so nothing was applied" in reason
    assert run.summary["outcome"] == "needs_human" and run.summary["migration"] == INDEX
    assert [r["verdict"] for r in risks(run)] == ["refuse"]
    assert not run.has("lock.acquired") and not run.has("step.applied")
    with db.connect() as conn:
        assert ledger(conn, "public") == before
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'Tenant'"
                            " AND column_name = 'note'").fetchone() == (0,)
    assert not index_exists(db, "Event_type_idx")

    # plan says the same, exits as run would, and still prints the whole plan
    plan = job(db, migrations, "plan", **guard)
    assert plan.code == 5 and plan.summary["reason"] == reason
    assert "-- refused (DB_INIT_REFUSE_BLOCKING_ROWS): line 2" in plan.stdout
    assert f"apply {COLUMN}" in plan.stdout

    # Above the table's rows, or unset (the default), the same folder runs as written
    assert job(db, migrations, "plan", DB_INIT_REFUSE_BLOCKING_ROWS="1000000").code == 0
    run = job(db, migrations, DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert run.code == 0, run.stderr
    assert run.summary["migrations_applied"] == [INDEX, COLUMN] and index_exists(db, "Event_type_idx")
    assert [r["verdict"] for r in risks(run)] == ["warn"]


def test_under_the_threshold_or_concurrently_nothing_is_warned(db: Db, tmp_path: Path) -> None:
    big_event_table(db)
    migrations = folder(tmp_path, {INDEX: INDEX_SQL})
    default = job(db, migrations, "plan")  # 100000 rows by default
    assert default.code == 0 and not risks(default) and f"(~{ROWS:,} rows)" in default.stdout
    assert not risks(job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="off"))
    concurrently = folder(tmp_path / "c", {INDEX: INDEX_SQL.replace("INDEX ", "INDEX CONCURRENTLY ")})
    run = job(db, concurrently, DB_INIT_WARN_BLOCKING_ROWS="0", DB_INIT_REFUSE_BLOCKING_ROWS="0")
    assert run.code == 0 and not risks(run), run.stderr


def test_the_servers_volatility_decides_whether_a_default_rewrites_the_table(db: Db, tmp_path: Path) -> None:
    big_event_table(db)
    migrations = folder(tmp_path, {
        "20260301000000_event_token": 'ALTER TABLE "Event" ADD COLUMN "token" UUID NOT NULL DEFAULT'
                                      " gen_random_uuid();\n",
        "20260301000100_event_seen": 'ALTER TABLE "Event" ADD COLUMN "seenAt" TIMESTAMPTZ NOT NULL DEFAULT'
                                     " now();\n"})
    plan = job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert plan.code == 0, plan.stderr
    [risk] = risks(plan)
    assert (risk["migration"], risk["lock"], risk["blocks"], risk["duration"]) == (
        "20260301000000_event_token", "ACCESS EXCLUSIVE", "reads and writes", "rewrites the table")
    assert "gen_random_uuid(), volatile" in risk["reason"]
    assert 'ACCESS EXCLUSIVE on "Event" (~3,000 rows): blocks reads and writes for a moment' in plan.stdout


def test_set_not_null_under_a_validated_check_is_not_warned(db: Db, tmp_path: Path) -> None:
    big_event_table(db)
    migrations = folder(tmp_path, {"20260301000000_event_shop_nn": 'ALTER TABLE "Event" ALTER COLUMN'
                                                                   ' "sessionId" SET NOT NULL;\n'})
    with db.connect() as conn:
        conn.execute('UPDATE "Event" SET "sessionId" = \'s\'')
        conn.execute('ANALYZE "Event"')
    [risk] = risks(job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="1000"))
    assert (risk["lock"], risk["duration"]) == ("ACCESS EXCLUSIVE", "scans the table")
    with db.connect() as conn:
        conn.execute('ALTER TABLE "Event" ADD CONSTRAINT "Event_sessionId_nn" CHECK ("sessionId" IS NOT NULL)'
                     " NOT VALID")
    assert risks(job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="1000"))  # not validated yet
    with db.connect() as conn:
        conn.execute('ALTER TABLE "Event" VALIDATE CONSTRAINT "Event_sessionId_nn"')
    plan = job(db, migrations, "plan", DB_INIT_WARN_BLOCKING_ROWS="1000")
    assert plan.code == 0 and not risks(plan) and "blocks reads and writes for a moment" in plan.stdout


def test_a_table_never_analyzed_is_weighed_by_its_live_row_count(db: Db, tmp_path: Path) -> None:
    big_event_table(db, analyze=False)
    deadline = time.monotonic() + 20
    with db.connect() as conn:  # the statistics arrive a moment after the inserting session ends
        while conn.execute("SELECT pg_stat_get_live_tuples('\"Event\"'::regclass)").fetchone() != (ROWS,):
            assert time.monotonic() < deadline, "the cumulative statistics never counted the rows"
            time.sleep(0.1)
            conn.execute("SELECT pg_stat_clear_snapshot()")
    [risk] = risks(job(db, folder(tmp_path, {INDEX: INDEX_SQL}), "plan", DB_INIT_WARN_BLOCKING_ROWS="1000"))
    assert risk["rows"] == ROWS


# The counting proxy's two pump threads race to close their sockets once the process is gone (a recv on
# a closed socket), after every turn has been counted: harmless here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_no_op_run_still_costs_one_round_trip_after_connecting(db: Db) -> None:
    big_event_table(db)
    env = job_env(db.url, DB_INIT_WARN_BLOCKING_ROWS="0", DB_INIT_REFUSE_BLOCKING_ROWS="0")

    def via(port: int) -> str:
        return db.url.replace(f":{db.cluster.port}/", f":{port}/")

    floor, _ = count([sys.executable, str(ROOT / "bench" / "floor.py")], env, via, db.cluster.port)
    trips, sent = count([sys.executable, "-m", "job", "run"], env, via, db.cluster.port)
    assert trips - (floor - 1) == 1, sent  # connecting costs the floor's trips but its one query


@pytest.mark.parametrize(("value", "rows"), [("100000", 100000), ("1_000", 1000), ("0", 0), ("off", None),
                                              (" OFF ", None)])
def test_row_thresholds_are_whole_numbers_or_off(value: str, rows: int | None) -> None:
    config = load_config({"database_url": "postgresql://u@h/d", "warn_blocking_rows": value,
                          "refuse_blocking_rows": value}, env={})
    assert (config.warn_blocking_rows, config.refuse_blocking_rows) == (rows, rows)


def test_the_defaults_warn_at_100000_rows_and_never_refuse() -> None:
    config = load_config({"database_url": "postgresql://u@h/d"}, env={})
    assert (config.warn_blocking_rows, config.refuse_blocking_rows) == (100_000, None)
    with pytest.raises(ConfigError, match="DB_INIT_REFUSE_BLOCKING_ROWS='1e5' is not a number of rows"):
        load_config({"database_url": "postgresql://u@h/d"}, env={"DB_INIT_REFUSE_BLOCKING_ROWS": "1e5"})
