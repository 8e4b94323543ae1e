"""Files that one transaction refuses deploy, as Prisma 7 deploys them, as atomically as PostgreSQL allows.

Since Prisma 7.4 `prisma migrate deploy` sends a file statement by statement, so teams write files that
PostgreSQL refuses to run in one transaction: `CREATE INDEX CONCURRENTLY` beside other statements, an enum
value added and then used. The reference for "Prisma 7 deploys it" is `psql -v ON_ERROR_STOP=1 -f`, which
also sends each statement on its own: every release below must end, schema and rows, exactly where psql
leaves the same files, with one finished ledger row per migration, `verify` 0 and a second run a no-op.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from jobtools import ledger, run_job
from pgcluster import Db, find_postgres_bindirs
from test_crash_boundaries import differences, fingerprint

from job.units import PROGRESS_TAG

INIT = '''-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "User" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'USER',
    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "authorId" TEXT,
    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Post_title_idx" ON "Post"("title");
'''
ROWS = ("INSERT INTO \"User\" VALUES ('u1', 'a@x', 'USER'), ('u2', 'guest@x', 'ADMIN');"
        " INSERT INTO \"Post\" (\"title\", \"authorId\")"
        " SELECT 'post ' || i, 'u1' FROM generate_series(1, 50) i;")

RELEASES = {
    "table_column_then_concurrent_index": '''-- CreateTable
CREATE TABLE "Tag" ("id" TEXT NOT NULL, "name" TEXT NOT NULL, CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"));

-- AlterTable
ALTER TABLE "Post" ADD COLUMN "tagId" TEXT;

-- CreateIndex
CREATE INDEX CONCURRENTLY "Post_tagId_idx" ON "Post"("tagId");
''',
    "two_concurrent_indexes": '''CREATE INDEX CONCURRENTLY "User_email_idx" ON "User"("email");
CREATE UNIQUE INDEX CONCURRENTLY "Post_id_title_key" ON "Post"("id", "title");
''',
    "own_lock_timeout_then_concurrent_index": '''SET lock_timeout = '30s';
CREATE INDEX CONCURRENTLY "User_email_idx" ON "User"("email");
''',
    "drop_index_concurrently_beside_alter_table": '''DROP INDEX CONCURRENTLY "Post_title_idx";
ALTER TABLE "Post" ADD COLUMN "body" TEXT;
''',
    "reindex_concurrently_beside_alter_table": '''ALTER TABLE "User" ADD COLUMN "name" TEXT;
REINDEX INDEX CONCURRENTLY "Post_title_idx";
''',
    "enum_value_made_the_default": '''-- AlterEnum
ALTER TYPE "Role" ADD VALUE 'GUEST';

-- AlterTable
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'GUEST';
''',
    "enum_value_backfilled_by_update": '''ALTER TYPE "Role" ADD VALUE 'GUEST';
UPDATE "User" SET "role" = 'GUEST' WHERE "email" LIKE 'guest%';
''',
    "enum_value_used_by_insert": '''ALTER TYPE "Role" ADD VALUE 'GUEST';
INSERT INTO "User" ("id", "email", "role") VALUES ('g1', 'g@x', 'GUEST');
''',
}


def psql() -> str:
    found = shutil.which("psql") or next((str(b / "psql") for b in find_postgres_bindirs().values()
                                          if (b / "psql").exists()), None)
    if found is None:
        pytest.skip("no psql (apt-get install postgresql-client, or pip install pgserver)")
    return found


def make_folder(root: Path, files: dict[str, str]) -> Path:
    folder = root / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "migration_lock.toml").write_text('provider = "postgresql"\n')
    for name, text in files.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "migration.sql").write_text(text, encoding="utf-8")
    return folder


def psql_files(db: Db, folder: Path, *names: str) -> None:
    """The reference: each file through psql, statement by statement in autocommit, as Prisma 7 sends it."""
    for name in names:
        subprocess.run([psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-f",
                        str(folder / name / "migration.sql")], check=True, capture_output=True)


def job(db: Db, folder: Path, *args: str, **env: str) -> Any:
    return run_job(db.url, *args, DB_INIT_MIGRATIONS_DIR=str(folder), **env)


def next_release(db: Db, tmp_path: Path, name: str, text: str) -> Path:
    """The database at the previous release (INIT and its rows); the folder that adds ``name``."""
    at_previous_release(db, make_folder(tmp_path / "init", {"20260101000000_init": INIT}))
    return make_folder(tmp_path / "next", {"20260101000000_init": INIT, name: text})


def at_previous_release(db: Db, folder: Path) -> None:
    first = job(db, folder)
    assert first.code == 0, first.stderr
    with db.connect() as conn:
        conn.execute(ROWS)


def without_ledger(fp: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [v for v in vs if "_prisma_migrations" not in v] for k, vs in fp.items() if k != "ledger"}


@pytest.mark.matrix  # also on PostgreSQL 12-17 (tests/test_interop_matrix.py)
@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_release_one_transaction_refuses_deploys_as_prisma_7_deploys_it(
        db: Db, pg: Any, tmp_path: Path, release: str) -> None:
    folder = next_release(db, tmp_path, f"20260201000000_{release}", RELEASES[release])

    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert run.summary["migrations_applied"] == [f"20260201000000_{release}"]
    assert run.has("migration.unit_applied")
    assert "Traceback" not in run.stderr
    with db.connect() as conn:
        rows = ledger(conn, "public")
        found = fingerprint(conn, "public")
    assert [(r["migration_name"], r["finished_at"] is not None, r["rolled_back_at"], r["applied_steps_count"],
             r["logs"]) for r in rows] == [("20260101000000_init", True, None, 1, None),
                                           (f"20260201000000_{release}", True, None, 1, None)]

    reference = Db(name=pg.create_database(), url="", cluster=pg)
    reference = Db(name=reference.name, url=pg.url(reference.name), cluster=pg)
    try:
        psql_files(reference, folder, "20260101000000_init")
        with reference.connect() as conn:
            conn.execute(ROWS)
        psql_files(reference, folder, f"20260201000000_{release}")
        with reference.connect() as conn:
            expected = fingerprint(conn, "public")
    finally:
        pg.drop_database(reference.name)
    assert not differences(without_ledger(expected), without_ledger(found))

    verify = job(db, folder, "verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    again = job(db, folder)
    assert again.code == 0 and not again.has("lock.acquired"), again.stderr


def test_plan_shows_the_units_and_why_and_changes_nothing(db: Db, tmp_path: Path) -> None:
    folder = next_release(db, tmp_path, "20260201000000_tag", RELEASES["table_column_then_concurrent_index"])
    shown = job(db, folder, "plan")
    assert shown.code == 0, shown.stderr
    assert "in 2 units: CREATE INDEX CONCURRENTLY (each outside a transaction)" in shown.stdout
    assert "-- unit 1 of 2 (statements 1-2, line 2, one transaction)" in shown.stdout
    assert "-- unit 2 of 2 (statement 3, line 8, outside a transaction)" in shown.stdout
    as_json = job(db, folder, "plan", "--json")
    units = next(s for s in json.loads(as_json.stdout)["steps"] if s["units"])["units"]
    assert [(u["statements"], u["transaction"]) for u in units] == [([1, 2], True), ([3, 3], False)]
    with db.connect() as conn:
        assert [r["migration_name"] for r in ledger(conn, "public")] == ["20260101000000_init"]


BROKEN_LATER = '''ALTER TABLE "User" ADD COLUMN "nickname" TEXT;
CREATE UNIQUE INDEX CONCURRENTLY "User_role_key" ON "User"("role");
ALTER TABLE "User" ADD COLUMN "after" TEXT;
'''


@pytest.mark.matrix  # also on PostgreSQL 12-17 (tests/test_interop_matrix.py)
def test_a_failure_names_what_is_committed_and_the_next_run_continues_after_it(
        db: Db, tmp_path: Path) -> None:
    folder = next_release(db, tmp_path, "20260201000000_role", BROKEN_LATER)
    with db.connect() as conn:
        conn.execute("INSERT INTO \"User\" VALUES ('u3', 'c@x', 'USER')")  # two USERs: the unique index fails

    run = job(db, folder)
    assert run.code == 6, run.stderr
    reason = run.summary["reason"]
    assert "20260201000000_role failed at unit 2 of 3 (statement 2, line 2: CREATE UNIQUE INDEX" in reason
    assert "statements 1-1 of 3 committed; the next run continues after them" in reason
    with db.connect() as conn:
        (row,) = [r for r in ledger(conn, "public") if r["migration_name"] == "20260201000000_role"]
        assert row["finished_at"] is None and row["applied_steps_count"] == 1
        assert row["logs"].startswith(PROGRESS_TAG) and "could not create unique index" in row["logs"]
        assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)
        conn.execute("DELETE FROM \"User\" WHERE id = 'u3'")

    again = job(db, folder)
    assert again.code == 0, again.stderr
    assert again.has("migration.resumed")
    with db.connect() as conn:
        rows = [r for r in ledger(conn, "public") if r["migration_name"] == "20260201000000_role"]
        assert [(r["finished_at"] is not None, r["applied_steps_count"], r["logs"]) for r in rows] == \
            [(True, 1, None)]
        cols = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns"
                                           " WHERE table_name = 'User'")}
        assert {"nickname", "after"} <= cols


def test_a_failing_first_unit_commits_nothing_of_the_file(db: Db, tmp_path: Path) -> None:
    folder = next_release(db, tmp_path, "20260201000000_bad",
                          'ALTER TABLE "User" ADD COLUMN "a" TEXT;\nALTER TABLE "Nope" ADD COLUMN "b" TEXT;\n'
                          'CREATE INDEX CONCURRENTLY "User_a_idx" ON "User"("a");\n')
    run = job(db, folder)
    assert run.code == 6, run.stderr
    assert "nothing of it is committed" in run.summary["reason"]
    with db.connect() as conn:
        assert [r["migration_name"] for r in ledger(conn, "public")] == ["20260101000000_init"]
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'a'"
                            ).fetchone() == (0,)


# --- a run that stopped right after a statement outside a transaction --------------------------

RELEASE = "20260201000000_tag"


def stopped_after_the_index(db: Db, tmp_path: Path, *, index_sql: str | None) -> Path:
    """The state a run leaves when it stops right after the CREATE INDEX CONCURRENTLY of the release
    (statements 1-2 committed and counted; the build done, or half done, or something else there)."""
    release = RELEASES["table_column_then_concurrent_index"]
    folder = next_release(db, tmp_path, RELEASE, release)
    with db.connect() as conn:
        conn.execute('CREATE TABLE "Tag" ("id" TEXT NOT NULL, "name" TEXT NOT NULL,'
                     ' CONSTRAINT "Tag_pkey" PRIMARY KEY ("id")); ALTER TABLE "Post" ADD COLUMN "tagId" TEXT')
        conn.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, logs,"
                     " applied_steps_count) VALUES ('r1', %s, %s, %s, 2)",
                     (hashlib.sha256(release.encode()).hexdigest(), RELEASE, PROGRESS_TAG + ": 2 of 3"))
        if index_sql:
            conn.execute(index_sql)
    return folder


def finished_once(db: Db) -> None:
    with db.connect() as conn:
        rows = [r for r in ledger(conn, "public") if r["migration_name"] == RELEASE]
        assert [(r["id"], r["finished_at"] is not None, r["applied_steps_count"]) for r in rows] == \
            [("r1", True, 1)]
        assert conn.execute("SELECT indisvalid FROM pg_index"
                            " WHERE indexrelid = '\"Post_tagId_idx\"'::regclass").fetchone() == (True,)


@pytest.mark.matrix  # also on PostgreSQL 12-17 (tests/test_interop_matrix.py)
def test_an_index_built_before_the_stop_is_not_built_again(db: Db, tmp_path: Path) -> None:
    folder = stopped_after_the_index(db, tmp_path,
                                     index_sql='CREATE INDEX "Post_tagId_idx" ON "Post"("tagId")')
    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert run.has("migration.statement_found_done")
    finished_once(db)


def test_an_index_left_invalid_by_the_stop_is_dropped_and_built_again(db: Db, tmp_path: Path) -> None:
    folder = stopped_after_the_index(db, tmp_path, index_sql=(
        'CREATE INDEX "Post_tagId_idx" ON "Post"("tagId");'
        " UPDATE pg_index SET indisvalid = false WHERE indexrelid = '\"Post_tagId_idx\"'::regclass"))
    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert not run.has("migration.statement_found_done")
    finished_once(db)


def test_the_statement_not_run_before_the_stop_runs_now(db: Db, tmp_path: Path) -> None:
    folder = stopped_after_the_index(db, tmp_path, index_sql=None)
    run = job(db, folder)
    assert run.code == 0, run.stderr
    finished_once(db)
    assert job(db, folder, "verify").code == 0


def test_another_index_under_the_name_stops_the_run_for_a_human(db: Db, tmp_path: Path) -> None:
    folder = stopped_after_the_index(db, tmp_path,
                                     index_sql='CREATE INDEX "Post_tagId_idx" ON "Post"("title")')
    run = job(db, folder)
    assert run.code == 5, run.stderr
    assert 'an index "Post_tagId_idx" exists that is not the one the file builds' in run.summary["reason"]


# --- failed rows whose outcome is unknown (issue: "at the edges", point 4) ---------------------

PRICES = "20260201000000_raise_prices"


def failed_row(db: Db, name: str, text: str, logs: str | None = None) -> None:
    with db.connect() as conn:
        conn.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, logs,"
                     " applied_steps_count) VALUES ('f1', %s, %s, %s, 0)",
                     (hashlib.sha256(text.encode()).hexdigest(), name, logs))


@pytest.mark.matrix  # also on PostgreSQL 12-17 (tests/test_interop_matrix.py)
def test_a_failed_row_that_may_hide_committed_data_changes_stops_the_run(db: Db, tmp_path: Path) -> None:
    text = ('ALTER TABLE "User" ADD COLUMN "credit" INTEGER NOT NULL DEFAULT 0;\n'
            'UPDATE "User" SET "credit" = 10;\n')
    folder = next_release(db, tmp_path, PRICES, text)
    with db.connect() as conn:  # the file committed, the run died before its row was finished
        conn.execute(text)
    failed_row(db, PRICES, text)
    run = job(db, folder)
    assert run.code == 5, run.stderr
    reason = run.summary["reason"]
    assert f"{PRICES} has a failed ledger row (no outcome is recorded" in reason
    assert f"db-init resolve --rolled-back {PRICES}" in reason and f"--applied {PRICES}" in reason
    with db.connect() as conn:
        assert conn.execute('SELECT DISTINCT "credit" FROM "User"').fetchall() == [(10,)]

    resolved = job(db, folder, "resolve", "--applied", PRICES)
    assert resolved.code == 0, resolved.stderr
    after = job(db, folder)
    assert after.code == 0, after.stderr
    with db.connect() as conn:
        assert conn.execute('SELECT DISTINCT "credit" FROM "User"').fetchall() == [(10,)]
        rows = [(r["finished_at"] is not None, r["rolled_back_at"] is not None)
                for r in ledger(conn, "public") if r["migration_name"] == PRICES]
        assert sorted(rows) == [(False, True), (True, False)]
    assert job(db, folder, "verify").code == 0


def test_a_failed_row_of_a_schema_only_file_with_nothing_of_it_there_is_closed_and_run(
        db: Db, tmp_path: Path) -> None:
    text = RELEASES["table_column_then_concurrent_index"]
    folder = next_release(db, tmp_path, RELEASE, text)
    failed_row(db, RELEASE, text, logs="ERROR: canceling statement due to lock timeout")
    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert run.has("ledger.failed_row_closed")
    assert job(db, folder, "verify").code == 0


def test_a_failed_row_of_a_schema_only_file_with_part_of_it_there_stops_the_run(
        db: Db, tmp_path: Path) -> None:
    text = RELEASES["table_column_then_concurrent_index"]
    folder = next_release(db, tmp_path, RELEASE, text)
    with db.connect() as conn:  # Prisma 7 committed the first statement, then the second failed
        conn.execute('CREATE TABLE "Tag" ("id" TEXT NOT NULL, "name" TEXT NOT NULL,'
                     ' CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"))')
    failed_row(db, RELEASE, text, logs="ERROR: lock timeout")
    run = job(db, folder)
    assert run.code == 5, run.stderr
    rolled = job(db, folder, "resolve", "--rolled-back", RELEASE)
    assert rolled.code == 0
    with db.connect() as conn:
        conn.execute('DROP TABLE "Tag"')
    assert job(db, folder).code == 0
    assert job(db, folder, "verify").code == 0


def test_resolve_refuses_what_prisma_refuses(db: Db, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "init", {"20260101000000_init": INIT})
    assert job(db, folder).code == 0
    for args, text in ((("--rolled-back", "20260101000000_init"), "no failed ledger row"),
                       (("--applied", "20260101000000_init"), "already recorded as applied"),
                       (("--applied", "20990101000000_nope"), "not in the migrations folder")):
        refused = job(db, folder, "resolve", *args)
        assert refused.code == 2 and text in refused.summary["reason"], refused.stderr


def test_a_file_that_rolls_back_its_own_transaction_is_recorded_not_reported_committed(
        db: Db, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "f", {"20260101000000_init": INIT, "20260201000000_undone":
                         'BEGIN;\nCREATE TABLE "Scratch" ("id" TEXT);\nROLLBACK;\n'})
    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert run.has("migration.rolled_back_itself") and not run.has("migration.committed_itself")
    assert run.summary["migrations_applied"] == ["20260101000000_init", "20260201000000_undone"]
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('\"Scratch\"')").fetchone() == (None,)
        assert [(r["migration_name"], r["finished_at"] is not None) for r in ledger(conn, "public")] == \
            [("20260101000000_init", True), ("20260201000000_undone", True)]


def test_a_statement_the_plan_does_not_know_refuses_a_transaction_then_runs_alone(
        db: Db, tmp_path: Path) -> None:
    """A DO block that commits: PostgreSQL refuses it in a transaction block (2D000), which no lexer can
    foresee; nothing of the file ran, so it runs again statement by statement, that one outside."""
    folder = make_folder(tmp_path / "f", {"20260101000000_init": INIT, "20260201000000_commits":
                         'ALTER TABLE "User" ADD COLUMN "n" INTEGER;\n'
                         'DO $$ BEGIN UPDATE "User" SET "n" = 1; COMMIT; END $$;\n'})
    run = job(db, folder)
    assert run.code == 0, run.stderr
    assert run.has("migration.split_after_refusal")
    with db.connect() as conn:
        conn.execute("INSERT INTO \"User\" (id, email) VALUES ('z', 'z@x')")
        assert [r["applied_steps_count"] for r in ledger(conn, "public")] == [1, 1]
    assert job(db, folder, "verify").code == 0


# --- the real Prisma CLI agrees (tests/test_interop.py's peer: Prisma 7.10) ----------------------

SCHEMA = '''generator client {
  provider = "prisma-client-js"
}

datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

enum Role {
  USER
  ADMIN
}

model User {
  id    String @id
  email String
  role  Role   @default(USER)
}

model Post {
  id       Int     @id @default(autoincrement())
  title    String
  authorId String?

  @@index([title])
}
'''


@pytest.mark.interop
def test_prisma_agrees_with_the_ledger_of_a_file_run_in_units(peer: Any, db: Db, tmp_path: Path) -> None:
    """Prisma reads the finished row as applied; a row a stopped run left part-way as failed (P3009: no
    deploy runs the file's first statements twice); and `db-init resolve` as its own `migrate resolve`."""
    from test_evolution import _Folder
    folder = next_release(db, tmp_path, RELEASE, RELEASES["table_column_then_concurrent_index"])
    (tmp_path / "schema.prisma").write_text(SCHEMA)
    cli = _Folder(peer, folder, tmp_path / "schema.prisma")
    with db.connect() as conn:  # a run stopped after the first unit (statements 1-2 committed and counted)
        conn.execute('CREATE TABLE "Tag" ("id" TEXT NOT NULL, "name" TEXT NOT NULL,'
                     ' CONSTRAINT "Tag_pkey" PRIMARY KEY ("id")); ALTER TABLE "Post" ADD COLUMN "tagId" TEXT')
        text = RELEASES["table_column_then_concurrent_index"]
        conn.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, logs,"
                     " applied_steps_count) VALUES ('r1', %s, %s, %s, 2)",
                     (hashlib.sha256(text.encode()).hexdigest(), RELEASE, PROGRESS_TAG + ": 2 of 3"))
    deploy = cli.prisma(db.url, "migrate", "deploy")
    assert deploy.code != 0 and "P3009" in deploy.out + deploy.err, deploy.text
    run = job(db, folder)
    assert run.code == 0 and run.has("migration.resumed"), run.stderr
    status = cli.prisma(db.url, "migrate", "status")
    assert status.code == 0 and "Database schema is up to date!" in status.out, status.text
    deploy = cli.prisma(db.url, "migrate", "deploy")
    assert deploy.code == 0 and "No pending migrations to apply." in deploy.out, deploy.text


@pytest.mark.interop
def test_prisma_reads_db_init_resolve_as_its_own_migrate_resolve(peer: Any, db: Db, tmp_path: Path) -> None:
    """After `db-init resolve --rolled-back`, Prisma 7's status names the migration as not yet applied, as
    after its own `migrate resolve`; after the job applies it, Prisma is up to date."""
    from test_evolution import _Folder
    text = RELEASES["table_column_then_concurrent_index"]
    folder = next_release(db, tmp_path, RELEASE, text)
    failed_row(db, RELEASE, text, logs="ERROR: lock timeout")
    (tmp_path / "schema.prisma").write_text(SCHEMA)
    cli = _Folder(peer, folder, tmp_path / "schema.prisma")
    assert job(db, folder, "resolve", "--rolled-back", RELEASE).code == 0
    status = cli.prisma(db.url, "migrate", "status")
    assert status.code == 1 and RELEASE in status.out and "P3009" not in status.out, status.text
    assert job(db, folder).code == 0
    status = cli.prisma(db.url, "migrate", "status")
    assert status.code == 0 and "Database schema is up to date!" in status.out, status.text


def test_behind_a_pooler_a_run_reports_only_the_migrations_it_committed(db: Db, tmp_path: Path) -> None:
    """Behind a transaction pooler the lock lasts one transaction, so another runner may apply a migration
    between two of this run's transactions: this run must not report it (issue 22, point 8). Made
    deterministic: run A (pooled) heals an index on a table a third session keeps locked, retrying;
    meanwhile run B (direct) gets the lock, gives up that repair and applies the migration."""
    from jobtools import finish, start_job
    folder = next_release(db, tmp_path, "20260201000000_nickname",
                          'ALTER TABLE "User" ADD COLUMN "nick" TEXT;\n')
    with db.connect() as conn:
        conn.execute('DROP INDEX "Post_title_idx"')  # recorded by the first migration: healing rebuilds it
    with db.connect() as holder:
        holder.execute('BEGIN; LOCK TABLE "Post" IN ROW EXCLUSIVE MODE')  # the index build waits on it
        started = time.monotonic()
        a = start_job(f"{db.url}?pgbouncer=true", DB_INIT_MIGRATIONS_DIR=str(folder),
                      DB_INIT_LOCK_TIMEOUT="90s", DB_INIT_DDL_LOCK_TIMEOUT="300ms")
        assert a.stderr is not None
        seen = []
        for line in a.stderr:  # A is past its repairs and retrying the index
            seen.append(line)
            if '"apply.retry"' in line:
                break
        b = run_job(db.url, DB_INIT_MIGRATIONS_DIR=str(folder), DB_INIT_LOCK_TIMEOUT="15s",
                    DB_INIT_DDL_LOCK_TIMEOUT="200ms")
        assert b.code == 0, b.stderr
        assert b.summary["migrations_applied"] == ["20260201000000_nickname"]
        holder.execute("COMMIT")
    rest = finish(a, started)
    assert rest.code == 0, "".join(seen) + rest.stderr
    events = [json.loads(ln) for ln in seen] + rest.events
    assert any(e.get("event") == "apply.already_applied" for e in events), "B applied it in A's gap"
    assert next(e for e in events if e.get("event") == "run.finished")["migrations_applied"] == []
