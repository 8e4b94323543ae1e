"""The migration runner against a real PostgreSQL: every release of the app goes through.

Each test builds a migrations folder (the shipped one plus what a team adds),
runs the real job as a process, and checks the database, the ledger and the log.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jobtools import MIGRATIONS_DIR, ledger, rows_by_table, run_job
from pgcluster import Db
from scenarios import STATES

Folder = Callable[..., Path]


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    """The shipped folder plus the given migrations (name -> SQL), as a new folder; returns its path."""
    def make(extra: dict[str, str] | None = None, *, base: Path = MIGRATIONS_DIR) -> Path:
        target = tmp_path / "migrations"
        if not target.exists():
            shutil.copytree(base, target)
        for name, text in (extra or {}).items():
            (target / name).mkdir(exist_ok=True)
            (target / name / "migration.sql").write_text(text, encoding="utf-8")
        return target
    return make


def job(db: Db, migrations: Path, *args: str, **env: str) -> Any:
    return run_job(db.url, *args, DB_INIT_MIGRATIONS_DIR=str(migrations), **env)


def index_valid(conn: Any, name: str) -> bool:
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                       (f'"{name}"',)).fetchone()
    return bool(row and row[0])


def applied(conn: Any) -> dict[str, str]:
    """Each ledger row's state by migration name (the last row of a name wins)."""
    out = {}
    for r in ledger(conn, "public"):
        out[r["migration_name"]] = ("rolled_back" if r["rolled_back_at"] else
                                    "finished" if r["finished_at"] else "failed")
    return out


WISHLIST = {"20260105000000_add_wishlist_count":
            'ALTER TABLE "Tenant" ADD COLUMN "wishlistCount" INTEGER NOT NULL DEFAULT 0;\n'}


def test_a_new_column_on_an_up_to_date_database_is_applied_not_healed_ahead(db: Db, folder: Folder) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("""INSERT INTO "Tenant" (id, shop, "updatedAt") VALUES ('rt_1', 'rt_s1', now())""")
    migrations = folder(WISHLIST)
    plan = job(db, migrations, "plan", "--json")
    assert plan.code == 0 and '"add_column"' not in plan.stdout and "20260105000000" in plan.stdout
    first = job(db, migrations)
    assert first.code == 0, first.stderr
    assert first.summary["migrations_applied"] == ["20260105000000_add_wishlist_count"]
    with db.connect() as conn:
        wished = conn.execute('''SELECT "wishlistCount" FROM "Tenant" WHERE id = 'rt_1' ''')
        assert wished.fetchall() == [(0,)]
        assert applied(conn)["20260105000000_add_wishlist_count"] == "finished"
    again = job(db, migrations)
    assert again.code == 0 and not again.has("lock.acquired") and again.summary["changed"] is False
    assert job(db, migrations, "verify").code == 0


def test_create_index_concurrently_runs_outside_a_transaction_as_prisma_does(db: Db, folder: Folder) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    migrations = folder({"20260106000000_index_shop": 'CREATE INDEX CONCURRENTLY "Tenant_chargeId_idx"'
                                                      ' ON "Tenant"("chargeId");\n'})
    run = job(db, migrations)
    assert run.code == 0, run.stderr
    assert run.has("migration.outside_transaction")
    with db.connect() as conn:
        assert index_valid(conn, "Tenant_chargeId_idx")
        assert applied(conn)["20260106000000_index_shop"] == "finished"
    assert job(db, migrations, "verify").code == 0


def test_an_interrupted_concurrent_build_is_found_dropped_and_built_again(db: Db, folder: Folder) -> None:
    name = "20260106000000_unique_shop"
    migrations = folder({name: 'CREATE UNIQUE INDEX CONCURRENTLY "Tenant_chargeId_key"'
                               ' ON "Tenant"("chargeId");\n'})
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        # What a build killed half-way leaves: an INVALID index, and the ledger row marked started.
        conn.execute("""INSERT INTO "Tenant" (id, shop, "chargeId", "updatedAt")
                        VALUES ('rt_a', 'rt_s1', 'dup', now()), ('rt_b', 'rt_s2', 'dup', now())""")
        with pytest.raises(Exception, match="could not create unique index"):
            conn.execute('CREATE UNIQUE INDEX CONCURRENTLY "Tenant_chargeId_key" ON "Tenant"("chargeId")')
        conn.execute("""DELETE FROM "Tenant" WHERE id = 'rt_b'""")
        conn.execute("""INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
                        VALUES (md5(random()::text), 'x', %s, now())""", (name,))
    run = job(db, migrations)
    assert run.code == 0, run.stderr
    dropped = next(e for e in run.events if e.get("action") == "drop_invalid_index")
    assert dropped["index"] == "Tenant_chargeId_key"
    with db.connect() as conn:
        assert index_valid(conn, "Tenant_chargeId_key")
        states = [r for r in ledger(conn, "public") if r["migration_name"] == name]
        assert sorted(("rolled_back" if r["rolled_back_at"] else "finished") for r in states) == [
            "finished", "rolled_back"]
    assert job(db, migrations, "verify").code == 0


def test_an_enum_value_added_then_used_in_the_next_release(db: Db, folder: Folder) -> None:
    migrations = folder({
        "20260107000000_status": 'CREATE TYPE "Status" AS ENUM (\'ACTIVE\', \'PAUSED\');\n'
                                 'ALTER TABLE "Tenant" ADD COLUMN "status" "Status"'
                                 ' NOT NULL DEFAULT \'ACTIVE\';\n',
        "20260108000000_status_cancelled": 'ALTER TYPE "Status" ADD VALUE \'CANCELLED\';\n',
        "20260109000000_cancel_uninstalled": 'UPDATE "Tenant" SET "status" = \'CANCELLED\''
                                             ' WHERE "uninstalledAt" IS NOT NULL;\n',
    })
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("""INSERT INTO "Tenant" (id, shop, "updatedAt", "uninstalledAt")
                        VALUES ('rt_t', 'rt_s', now(), now())""")
    run = job(db, migrations)
    assert run.code == 0, run.stderr
    assert len(run.summary["migrations_applied"]) == 3
    with db.connect() as conn:
        status = conn.execute('''SELECT status::text FROM "Tenant" WHERE id = 'rt_t' ''')
        assert status.fetchall() == [("CANCELLED",)]
    assert job(db, migrations, "verify").code == 0


def test_a_file_with_its_own_commit_then_a_failure_says_what_is_committed(db: Db, folder: Folder) -> None:
    migrations = folder({
        "20260110000000_own_transaction": 'BEGIN;\nCREATE TABLE "Wish" ("id" TEXT PRIMARY KEY);\nCOMMIT;\n',
        "20260111000000_broken": 'ALTER TABLE "Nowhere" ADD COLUMN "x" INTEGER;\n',
    })
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    run = job(db, migrations)
    assert run.code == 6
    reason = run.summary["reason"]
    assert "nothing was applied" not in reason and "nothing applied" not in reason
    assert "20260110000000_own_transaction" in reason and "20260111000000_broken" in reason
    assert run.summary["committed"] == ["20260110000000_own_transaction"]
    assert run.has("migration.committed_itself")
    with db.connect() as conn:
        assert applied(conn)["20260110000000_own_transaction"] == "finished"
        assert "20260111000000_broken" not in applied(conn)
        assert conn.execute("""SELECT to_regclass('"Wish"') IS NOT NULL""").fetchone() == (True,)


def test_a_failing_migration_after_good_ones_keeps_them_and_names_them(db: Db, folder: Folder) -> None:
    migrations = folder({**WISHLIST,
                         "20260111000000_broken": 'ALTER TABLE "Nowhere" ADD COLUMN "x" INTEGER;\n'})
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    run = job(db, migrations)
    assert run.code == 6
    assert run.summary["committed"] == ["20260105000000_add_wishlist_count"]
    assert "committed before it: 20260105000000_add_wishlist_count" in run.summary["reason"]
    with db.connect() as conn:
        assert applied(conn)["20260105000000_add_wishlist_count"] == "finished"
        assert "20260111000000_broken" not in applied(conn)  # rolled back with its row: no P3009


def test_a_hand_made_table_whose_default_is_spelled_otherwise_is_no_drift(db: Db, folder: Folder) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "Tenant" ALTER COLUMN "createdAt" SET DEFAULT now()')
    migrations = folder()
    assert job(db, migrations).code == 0
    verify = job(db, migrations, "verify")
    assert verify.code == 0, verify.stdout


def test_verify_sees_index_predicates_checks_views_and_enums(db: Db, folder: Folder) -> None:
    migrations = folder({"20260112000000_hand_written": (
        'CREATE TYPE "Tier" AS ENUM (\'FREE\', \'PRO\');\n'
        'CREATE UNIQUE INDEX "Tenant_shop_active_key" ON "Tenant"("shop") WHERE "uninstalledAt" IS NULL;\n'
        'ALTER TABLE "Plan" ADD CONSTRAINT "Plan_name_check" CHECK (length("name") > 0);\n'
        'CREATE VIEW "ActiveTenant" AS SELECT "id", "shop" FROM "Tenant" WHERE "uninstalledAt" IS NULL;\n')})
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    assert job(db, migrations).code == 0
    assert job(db, migrations, "verify").code == 0
    with db.connect() as conn:  # someone changes each by hand
        conn.execute('DROP INDEX "Tenant_shop_active_key"')
        conn.execute('CREATE UNIQUE INDEX "Tenant_shop_active_key" ON "Tenant"("shop")')
        conn.execute('ALTER TABLE "Plan" DROP CONSTRAINT "Plan_name_check"')
        conn.execute('DROP VIEW "ActiveTenant"')
        conn.execute('ALTER TYPE "Tier" ADD VALUE \'ENTERPRISE\'')
    verify = job(db, migrations, "verify")
    assert verify.code == 8
    out = verify.stdout
    assert 'index "Tenant_shop_active_key"' in out and "WHERE" in out
    assert 'missing check "Plan_name_check"' in out
    assert 'missing view "ActiveTenant"' in out
    assert 'enum "Tier"' in out and "ENTERPRISE" in out


def test_run_heals_what_recorded_migrations_built_and_reports_what_it_will_not_change(db: Db, folder: Folder
                                                                                       ) -> None:
    migrations = folder({"20260112000000_hand_written": (
        'ALTER TABLE "Plan" ADD CONSTRAINT "Plan_name_check" CHECK (length("name") > 0);\n'
        'CREATE VIEW "ActiveTenant" AS SELECT "id", "shop" FROM "Tenant" WHERE "uninstalledAt" IS NULL;\n')})
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    assert job(db, migrations).code == 0
    with db.connect() as conn:
        conn.execute('ALTER TABLE "Plan" DROP CONSTRAINT "Plan_name_check"')
        conn.execute('DROP VIEW "ActiveTenant"')
        conn.execute('DROP INDEX "Tenant_shop_key"')
        # A ledger row failed by hand makes the run look (a settled ledger is not re-examined)
        conn.execute("""INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
                        VALUES ('x', 'x', '20251008130439_update_for_new_pricing', now())""")
    run = job(db, migrations)
    assert run.code == 0, run.stderr
    actions = {e.get("action") for e in run.events if e.get("event") == "step.applied"}
    assert {"add_check", "create_view", "create_index", "validate_constraint"} <= actions
    assert job(db, migrations, "verify").code == 0


@pytest.mark.parametrize("text, line, words", [
    ('CREATE TABLE "Pricing" (\n  "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT\n);\n', 2, "syntax error"),
    ('-- SQLite era\nCREATE TABLE "Pricing" (\n  "id" TEXT,\n  "at" DATETIME\n);\n', 4, 'type "datetime"'),
    ('PRAGMA foreign_keys=OFF;\n', 1, "syntax error"),
    ('CREATE TABLEE "x" ();\n', 1, "syntax error"),
], ids=["autoincrement", "datetime", "pragma", "typo"])
def test_a_file_postgresql_refuses_is_found_before_anything_runs(db: Db, folder: Folder, text: str, line: int,
                                                                   words: str) -> None:
    migrations = folder({**WISHLIST, "20260113000000_bad": text})
    with db.connect() as conn:
        STATES["sqlite_failed"](conn, "public", MIGRATIONS_DIR)
        before = rows_by_table(conn, "public")
    run = job(db, migrations)
    assert run.code == 6
    reason = run.summary["reason"]
    assert f"20260113000000_bad/migration.sql line {line}" in reason and words in reason
    assert "nothing applied" in reason
    with db.connect() as conn:
        assert rows_by_table(conn, "public") == before


def test_a_migration_edited_after_it_ran_is_noted_never_applied_again(db: Db, folder: Folder) -> None:
    migrations = folder(WISHLIST)
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    assert job(db, migrations).code == 0
    path = migrations / "20260105000000_add_wishlist_count" / "migration.sql"
    path.write_text(path.read_text() + "-- edited\n")
    run = job(db, migrations)
    assert run.code == 0 and run.summary["changed"] is False
    assert any("modified after it was applied" in e.get("note", "") for e in run.events)


def test_two_migrations_with_one_timestamp_are_applied_in_name_order(db: Db, folder: Folder) -> None:
    migrations = folder({"20260114000000_a_table": 'CREATE TABLE "A" ("id" TEXT PRIMARY KEY);\n',
                         "20260114000000_b_column": 'ALTER TABLE "A" ADD COLUMN "b" TEXT;\n'})
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
    run = job(db, migrations)
    assert run.code == 0, run.stderr
    assert run.has("migrations.same_timestamp")
    assert run.summary["migrations_applied"] == ["20260114000000_a_table", "20260114000000_b_column"]


def test_an_app_whose_model_is_named_session_keeps_its_table(db: Db, tmp_path: Path) -> None:
    """A boilerplate's own `model session`: the Session fix follows the app's contract, not a name."""
    migrations = tmp_path / "migrations"
    (migrations / "20240101000000_init").mkdir(parents=True)
    (migrations / "migration_lock.toml").write_text('provider = "postgresql"\n')
    (migrations / "20240101000000_init" / "migration.sql").write_text(
        'CREATE TABLE "session" ("id" TEXT NOT NULL, "shop" TEXT NOT NULL, CONSTRAINT "session_pkey"'
        ' PRIMARY KEY ("id"));\n')
    first = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations))
    assert first.code == 0, first.stderr
    with db.connect() as conn:
        conn.execute("""INSERT INTO "session" VALUES ('offline_a', 'a.myshopify.com')""")
        conn.execute('CREATE TABLE "Session" ("id" TEXT PRIMARY KEY)')  # something else made one
    for _ in range(2):
        assert run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations)).code == 0
    with db.connect() as conn:
        assert conn.execute('SELECT count(*) FROM "session"').fetchone() == (1,)


def test_a_role_without_create_on_the_database_replays_in_pg_temp(db: Db, folder: Folder) -> None:
    with db.connect() as conn:
        STATES["sqlite_failed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("CREATE ROLE app_owner LOGIN PASSWORD 'Owner-pw-123'")
        conn.execute(f'REVOKE CREATE ON DATABASE "{db.name}" FROM PUBLIC')
        conn.execute("GRANT ALL ON SCHEMA public TO app_owner")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO app_owner")
        conn.execute("ALTER TABLE _prisma_migrations OWNER TO app_owner")
    url = db.url.replace("postgres:pw-Secr3t%21@", "app_owner:Owner-pw-123@")
    run = run_job(url, DB_INIT_MIGRATIONS_DIR=str(folder(WISHLIST)))
    assert run.code == 0, run.stderr
    assert not run.has("contract.unavailable")
    assert run_job(url, "verify", DB_INIT_MIGRATIONS_DIR=str(folder())).code == 0


def test_constraints_left_not_valid_by_a_crash_are_validated_by_the_job(db: Db, folder: Folder) -> None:
    """A run killed after its commit and before its validations: the next run, whatever its mode,
    finds the constraint NOT VALID without the job's comment, and validates it."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('ALTER TABLE "Tenant" DROP CONSTRAINT "Tenant_planId_fkey"')
        conn.execute('ALTER TABLE "Tenant" ADD CONSTRAINT "Tenant_planId_fkey" FOREIGN KEY ("planId")'
                     ' REFERENCES "Plan"("id") ON DELETE SET NULL ON UPDATE CASCADE NOT VALID')
    migrations = folder()
    init = job(db, migrations)  # an init container
    assert init.code == 0, init.stderr
    assert any(e.get("action") == "validate_constraint" for e in init.events)
    with db.connect() as conn:
        valid = conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'Tenant_planId_fkey'")
        assert valid.fetchone() == (True,)
    settled = job(db, migrations)
    assert settled.code == 0 and not settled.has("lock.acquired")


def test_a_folder_naming_its_schema_is_applied_without_replaying_it(db: Db, tmp_path: Path) -> None:
    """Schema-qualified names (Prisma's multiSchema, pg_dump baselines) would reach real objects in a
    replay: the contract is left unknown, nothing real is touched before its time, and Prisma's order
    of work is kept (the enum value committed before a later file uses it)."""
    migrations = tmp_path / "migrations"
    files = {
        "20240101000000_init": 'CREATE TYPE "public"."Role" AS ENUM (\'A\');\n'
                               'CREATE TABLE "public"."User" ("id" TEXT PRIMARY KEY,'
                               ' "role" "public"."Role");\n',
        "20240102000000_role_b": 'ALTER TYPE "public"."Role" ADD VALUE \'B\';\n',
        "20240103000000_default_b": 'ALTER TABLE "public"."User" ALTER COLUMN "role" SET DEFAULT \'B\';\n',
    }
    for name, text in files.items():
        (migrations / name).mkdir(parents=True)
        (migrations / name / "migration.sql").write_text(text)
    (migrations / "migration_lock.toml").write_text('provider = "postgresql"\n')
    plan = run_job(db.url, "plan", DB_INIT_MIGRATIONS_DIR=str(migrations))
    assert plan.code == 0 and plan.has("contract.unavailable")
    with db.connect() as conn:
        assert conn.execute("""SELECT to_regclass('public."User"')""").fetchone() == (None,)
    run = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations))
    assert run.code == 0, run.stderr
    assert len(run.summary["migrations_applied"]) == 3
    assert run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(migrations)).summary["changed"] is False


def test_a_repair_postgresql_refuses_is_reported_and_the_release_goes_through(db: Db, folder: Folder) -> None:
    """A unique index dropped by hand, duplicates since: healing it fails, the new release must not."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute('DROP INDEX "Tenant_shop_key"')
        conn.execute("""INSERT INTO "Tenant" (id, shop, "updatedAt")
                        VALUES ('rt_d1', 'rt_dup', now()), ('rt_d2', 'rt_dup', now())""")
    run = job(db, folder(WISHLIST))
    assert run.code == 0, run.stderr
    assert run.event("heal.skipped")["action"] == "create_index"
    assert run.summary["migrations_applied"] == ["20260105000000_add_wishlist_count"]
    with db.connect() as conn:
        assert conn.execute('SELECT count(*) FROM "Tenant" WHERE shop = %s', ("rt_dup",)).fetchone() == (2,)


def test_a_file_that_committed_part_of_itself_is_never_run_twice(db: Db, folder: Folder) -> None:
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("""INSERT INTO "Plan" (id, name, "priceMonthly", "messageLimit", "productLimit")
                        VALUES ('rt_p', 'rt_p', 1, 1, 1)""")
    migrations = folder({"20260115000000_half": (
        'ALTER TABLE "Plan" ADD COLUMN "cents" INTEGER NOT NULL DEFAULT 5;\n'
        'UPDATE "Plan" SET "cents" = "cents" * 100;\nCOMMIT;\n'
        'ALTER TABLE "Plan" ADD CONSTRAINT "Plan_cents_check" CHECK ("cents" < 100);\n')})
    first = job(db, migrations)
    assert first.code == 6 and "committed part of itself" in first.summary["reason"]
    second = job(db, migrations)
    assert second.code == 5 and "prisma migrate resolve" in second.summary["reason"]
    with db.connect() as conn:
        assert conn.execute("""SELECT "cents" FROM "Plan" WHERE id = 'rt_p'""").fetchone() == (500,)


def test_a_type_made_outside_the_folder_does_not_stop_a_pending_file(db: Db, folder: Folder) -> None:
    """The replay lacks "Status" (made by hand, db push era); the database has it, and so does Prisma."""
    with db.connect() as conn:
        STATES["fixed"](conn, "public", MIGRATIONS_DIR)
        conn.execute("""CREATE TYPE "Status" AS ENUM ('ON', 'OFF')""")
    run = job(db, folder({"20260116000000_status": 'ALTER TABLE "Tenant" ADD COLUMN "state" "Status";\n'}))
    assert run.code == 0, run.stderr
