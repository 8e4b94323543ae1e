"""job.units: a migration file cut into the fewest units PostgreSQL allows (pure, no database)."""

from __future__ import annotations

import pytest

from job.sqllexer import statements
from job.units import (
    INDEX_BUILT,
    INDEXES_DROPPED,
    RUN_AGAIN,
    after_a_stop,
    cut,
    drops_indexes,
    only_ddl,
    plan_units,
    sets_lock_timeout,
)


def shape(sql: str) -> list[tuple[int, int, bool]]:
    units = plan_units(sql)
    assert units is not None
    return [(u.first, u.last, u.transaction) for u in units]


@pytest.mark.parametrize("sql", [
    'CREATE TABLE "A" ("id" TEXT);\nALTER TABLE "A" ADD COLUMN "b" INTEGER;\n',
    '-- nothing but a comment\n',
    '',
    'CREATE INDEX "A_b_idx" ON "A"("b");',
    # its own transaction control: the file says how it commits
    'BEGIN;\nCREATE INDEX CONCURRENTLY "x" ON "A"("b");\nCOMMIT;\n',
    # an enum value added and never used in the file: one transaction (PostgreSQL 12+ allows it)
    'ALTER TYPE "Role" ADD VALUE \'GUEST\';\nALTER TABLE "User" ADD COLUMN "x" TEXT;\n',
    # CONCURRENTLY inside a function body or a string is no statement of the file
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CREATE INDEX CONCURRENTLY i"
    " ON t (c)'; END $$;\nSELECT 1;",
])
def test_a_file_postgresql_runs_in_one_transaction_stays_whole(sql: str) -> None:
    assert plan_units(sql) is None


def test_statements_refused_in_a_transaction_run_alone_and_the_rest_stays_together() -> None:
    sql = ('CREATE TABLE "Tag" ("id" TEXT NOT NULL);\n'
           'ALTER TABLE "Post" ADD COLUMN "tagId" TEXT;\n'
           'CREATE INDEX CONCURRENTLY "Post_tagId_idx" ON "Post"("tagId");\n'
           'CREATE UNIQUE INDEX CONCURRENTLY "Tag_id_key" ON "Tag"("id");\n'
           'ALTER TABLE "Post" ADD COLUMN "x" TEXT;\n')
    assert shape(sql) == [(0, 2, True), (2, 3, False), (3, 4, False), (4, 5, True)]
    units = plan_units(sql)
    assert units is not None
    assert units[0].text == ('CREATE TABLE "Tag" ("id" TEXT NOT NULL);\n'
                             'ALTER TABLE "Post" ADD COLUMN "tagId" TEXT')
    assert units[1].line == 3 and "CONCURRENTLY" in units[1].why


@pytest.mark.parametrize(("sql", "kind"), [
    ('CREATE INDEX CONCURRENTLY "i" ON "t"("c");', INDEX_BUILT),
    ('create unique index concurrently if not exists i on t (c);', INDEX_BUILT),
    ('DROP INDEX CONCURRENTLY "i";', INDEXES_DROPPED),
    ('DROP INDEX CONCURRENTLY IF EXISTS "public"."i";', INDEXES_DROPPED),
    ('REINDEX INDEX CONCURRENTLY "i";', RUN_AGAIN),
    ('REINDEX (VERBOSE) TABLE CONCURRENTLY "t";', RUN_AGAIN),
    ('VACUUM (ANALYZE) "t";', RUN_AGAIN),
    ("ALTER SYSTEM SET work_mem = '8MB';", RUN_AGAIN),
    ('CREATE DATABASE "other";', None),
    ('CREATE INDEX CONCURRENTLY ON "t"("c");', None),  # no name: PostgreSQL picks one, not found again
])
def test_each_statement_refused_in_a_transaction_is_known_with_how_a_stop_after_it_is_found(
        sql: str, kind: str | None) -> None:
    with_another = 'ALTER TABLE "t" ADD COLUMN "z" TEXT;\n' + sql
    assert shape(with_another) == [(0, 1, True), (1, 2, False)]
    assert after_a_stop(statements(sql)[0]) == kind


def test_a_new_enum_value_is_committed_before_its_first_use() -> None:
    sql = ('ALTER TYPE "Role" ADD VALUE \'GUEST\';\n'
           'ALTER TYPE "Role" ADD VALUE IF NOT EXISTS E\'O\\\'NEIL\';\n'
           'ALTER TABLE "Other" ADD COLUMN "y" TEXT;\n'
           'ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT \'GUEST\';\n'
           'UPDATE "User" SET "role" = \'O\'\'NEIL\' WHERE "id" = \'1\';\n')
    units = plan_units(sql)
    assert units is not None
    assert [(u.first, u.last) for u in units] == [(0, 3), (3, 5)]
    assert all(u.transaction for u in units)
    assert "'GUEST'" in units[1].why


@pytest.mark.parametrize("use", [
    "INSERT INTO \"User\" (\"id\", \"role\") VALUES ('g', 'GUEST');",
    "UPDATE \"User\" SET \"role\" = 'GUEST'::\"Role\";",
    "DO $$ BEGIN UPDATE \"User\" SET \"role\" = 'GUEST'; END $$;",
])
def test_every_kind_of_use_of_the_new_value_splits(use: str) -> None:
    assert shape(f"ALTER TYPE \"Role\" ADD VALUE 'GUEST';\n{use}\n") == [(0, 1, True), (1, 2, True)]


def test_a_file_cut_again_from_its_committed_statements() -> None:
    sql = ('ALTER TABLE "t" ADD COLUMN "a" TEXT;\nALTER TABLE "t" ADD COLUMN "b" TEXT;\n'
           'CREATE INDEX CONCURRENTLY "i" ON "t"("a");\nALTER TABLE "t" ADD COLUMN "c" TEXT;\n')
    assert [(u.first, u.last, u.transaction) for u in cut(sql, done=1)] == [(1, 2, True), (2, 3, False),
                                                                          (3, 4, True)]
    assert [(u.first, u.last) for u in cut(sql, done=3)] == [(3, 4)]
    assert cut(sql, done=4) == ()


def test_what_a_file_changes_besides_the_schema_and_what_it_sets() -> None:
    assert only_ddl('CREATE TABLE "a" ();\nALTER TABLE "a" ADD COLUMN "b" TEXT;\n'
                    'CREATE INDEX "i" ON "a"("b");')
    assert not only_ddl('ALTER TABLE "Plan" ADD COLUMN "p" INT;\nUPDATE "Plan" SET "p" = 1;')
    assert not only_ddl("INSERT INTO \"a\" VALUES (1);")
    assert not only_ddl("DO $$ BEGIN PERFORM 1; END $$;")
    sql = "SET lock_timeout = '30s';\nCREATE INDEX CONCURRENTLY \"i\" ON \"t\"(\"c\");"
    assert sets_lock_timeout(sql, 1) and not sets_lock_timeout(sql, 0)
    assert drops_indexes(statements('DROP INDEX CONCURRENTLY IF EXISTS "s"."i" CASCADE')[0]) == ("i",)
