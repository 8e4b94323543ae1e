"""The lock estimate is pure: the lexer, each rule of the classifier and the walk over the pending files,
with the catalog given as data. No database here (tests/test_lockguard.py runs it against one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.lockestimate import Estimate, Facts, coercible, estimate
from job.lockrisk import (
    ACCESS_EXCLUSIVE,
    BRIEF,
    BUILD,
    EVERY_ROW,
    NOTHING,
    READS_AND_WRITES,
    REWRITE,
    ROW_EXCLUSIVE,
    SCAN,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    UNKNOWN,
    WRITES,
    calls,
    parse,
)
from job.schemamodel import Catalog, Check, Column, Index, Table
from job.sqllexer import DOLLAR, IDENT, PARAM, STRING, WORD, fold, statements, tokens
from job.state import TableSize

ROOT = Path(__file__).resolve().parent.parent
BIG = 1_000_000


# --- the lexer ----------------------------------------------------------------------------------------

def split(text: str) -> list[tuple[int, str]]:
    return [(s.line, s.text) for s in statements(text)]


def test_statements_are_split_at_top_level_semicolons_with_the_line_each_starts_on() -> None:
    assert split("SELECT 1;\n\n  SELECT 2 ;SELECT\n3") == [(1, "SELECT 1"), (3, "SELECT 2"), (3, "SELECT\n3")]
    assert split(";;  ;\n") == []


def test_comments_hide_semicolons_quotes_and_nest() -> None:
    text = "-- a; 'b\nSELECT 1 /* one /* two; */ still 'inside' ; */ + 1;\n-- end ' $$"
    assert [s.line for s in statements(text)] == [2]
    assert [t.text for t in statements(text)[0].tokens] == ["SELECT", "1", "+", "1"]


def test_strings_with_doubled_quotes_hide_semicolons() -> None:
    [s] = statements("INSERT INTO t VALUES ('it''s; fine', 'x');")
    assert [t.text for t in s.tokens if t.kind == STRING] == ["'it''s; fine'", "'x'"]


def test_e_strings_take_backslash_escapes_and_plain_strings_do_not() -> None:
    [e, plain] = statements("SELECT E'a\\'; b', e'\\\\';\nSELECT 'c:\\';")
    assert [t.text for t in e.tokens if t.kind == STRING] == ["E'a\\'; b'", "e'\\\\'"]
    assert [t.text for t in plain.tokens if t.kind == STRING] == ["'c:\\'"]
    assert plain.line == 2
    # A word that merely ends in e is no E-string prefix
    assert [t.kind for t in tokens("type'x'")] == [WORD, STRING]


def test_quoted_identifiers_keep_their_case_and_hide_semicolons() -> None:
    [s] = statements('CREATE INDEX "a;""b" ON "Tenant"(x);')
    idents = [t for t in s.tokens if t.kind == IDENT]
    assert [t.name for t in idents] == ['a;"b', "Tenant"]


def test_dollar_quoted_bodies_are_one_token_and_hide_statements() -> None:
    text = ("CREATE FUNCTION f() RETURNS void AS $body$\nBEGIN\n  UPDATE t SET x = $$;$$;\nEND\n$body$"
            " LANGUAGE plpgsql;\nDO $$ BEGIN PERFORM 1; END $$;\nSELECT $1, a$b FROM t;")
    found = statements(text)
    assert [s.line for s in found] == [1, 6, 7]
    assert [t.kind for t in found[0].tokens].count(DOLLAR) == 1
    assert [(t.kind, t.text) for t in found[2].tokens][1:4] == [(PARAM, "$1"), ("op", ","), (WORD, "a$b")]


def test_a_sql_standard_function_body_is_one_statement() -> None:
    text = ("CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
            "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n  SELECT 3;\nEND;\nBEGIN;\nCOMMIT;")
    assert [line for line, _ in split(text)] == [1, 6, 7]


def test_line_numbers_count_the_lines_of_strings_comments_and_bodies() -> None:
    text = "/* a\nb */ SELECT 'x\ny';\n$$\n\n$$;\nSELECT 1;"
    assert [line for line, _ in split(text)] == [2, 4, 7]


def test_unterminated_text_runs_to_the_end_without_an_error() -> None:
    for text in ("SELECT 'abc", 'SELECT "abc', "SELECT $x$ abc", "SELECT /* /* */ x", "SELECT E'\\"):
        assert len(statements(text)) == 1


def test_names_fold_as_postgresql_folds_them() -> None:
    assert fold("Tenant") == "tenant" and fold("ÉTÉ") == "ÉtÉ"  # only ASCII letters are lowered
    [bare, quoted] = [t.name for t in tokens('Tenant "Tenant"')]
    assert (bare, quoted) == ("tenant", "Tenant")
    assert fold("x" * 70) == "x" * 63  # cut at NAMEDATALEN - 1 bytes


# --- the classifier and the walk ------------------------------------------------------------------------

def weigh(text: str, rows: dict[str, int | None] | None = None, **facts: object) -> list[Estimate]:
    found = estimate(parse([("20260101000000_m", text)]), Facts(rows={"big": BIG} if rows is None else rows,
                                                                 **facts))  # type: ignore[arg-type]
    return list(found)


def one(text: str, rows: dict[str, int | None] | None = None, **facts: object) -> Estimate:
    """The single estimate of a one-statement file that locks a table."""
    [found] = [e for e in weigh(text, rows, **facts) if e.table is not None]
    return found


def live(*tables: Table) -> Catalog:
    return Catalog({t.name: t for t in tables})


def table(name: str, *columns: tuple[str, str], checks: tuple[Check, ...] = (),
          indexes: tuple[Index, ...] = ()) -> Table:
    return Table(name, tuple(Column(c, t, True, None) for c, t in columns), indexes, (), checks)


def test_create_index_without_concurrently_blocks_writes_for_the_build() -> None:
    for text in ("CREATE INDEX big_x_idx ON big (x);",
                 "CREATE UNIQUE INDEX big_x_key ON public.big USING btree (x)"):
        e = one(text)
        assert (e.table, e.rows, e.lock, e.blocks, e.duration) == ("big", BIG, SHARE, WRITES, BUILD)
        assert e.blocking and e.at_least(BIG) and not e.at_least(BIG + 1)
        assert "CREATE INDEX CONCURRENTLY" in e.advice and "own migration" in e.advice
        assert e.line == 1 and e.migration == "20260101000000_m"


def test_create_index_concurrently_blocks_nothing() -> None:
    e = one("CREATE INDEX CONCURRENTLY IF NOT EXISTS big_x_idx ON big (x);")
    assert (e.lock, e.blocks, e.duration, e.blocking) == (SHARE_UPDATE_EXCLUSIVE, NOTHING, BUILD, False)


def test_create_index_if_not_exists_of_an_existing_index_does_nothing() -> None:
    [e] = weigh('CREATE INDEX IF NOT EXISTS "big_x_idx" ON big (x);',
                relations=frozenset({"big", "big_x_idx"}))
    assert e.table is None and not e.blocking and "exists already" in e.reason


def test_table_names_fold_and_lose_their_schema() -> None:
    rows: dict[str, int | None] = {"big": 1, "Big": 2}
    assert one("CREATE INDEX ON Big (x)", rows).rows == 1
    assert one('CREATE INDEX ON "Big" (x)', rows).rows == 2
    assert one('CREATE INDEX ON "public"."Big" (x)', rows).table == "Big"
    assert one('CREATE INDEX ON other.BIG (x)', rows).table == "big"


def test_a_new_column_with_a_volatile_default_rewrites_the_table_by_the_catalogs_volatility() -> None:
    text = "ALTER TABLE big ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();"
    assert calls(parse([("m", text)])) == {"gen_random_uuid"}
    volatile = one(text, volatility={"gen_random_uuid": "v"})
    assert (volatile.lock, volatile.blocks) == (ACCESS_EXCLUSIVE, READS_AND_WRITES)
    assert volatile.duration == REWRITE
    assert volatile.blocking and "gen_random_uuid(), volatile" in volatile.reason and volatile.advice
    # The same default, were the function stable: PostgreSQL stores it once, no rewrite
    stable = one(text, volatility={"gen_random_uuid": "s"})
    assert (stable.duration, stable.blocking) == (BRIEF, False)
    # A function the catalog does not have yet (made in this file): VOLATILE unless declared otherwise
    assert "not in the catalog yet" in one(text).reason


def test_defaults_that_call_no_function_or_only_stable_ones_are_brief() -> None:
    for default in ("0", "'x'::character varying(10)", "CURRENT_TIMESTAMP(3)", "now()", "ARRAY[]::TEXT[]",
                    "COALESCE(NULL, 'a')", "CAST('1' AS numeric(10, 2))", "NULL"):
        text = f'ALTER TABLE "big" ADD COLUMN "c" TEXT NOT NULL DEFAULT {default};'
        assert calls(parse([("m", text)])) <= {"now"}, default
        assert one(text, volatility={"now": "s"}).duration == BRIEF, default
    text = "ALTER TABLE t ADD c int DEFAULT nextval('s'::regclass) + pg_catalog.random()"
    assert calls(parse([("m", text)])) == {"nextval", "random"}


def test_serial_identity_and_stored_generated_columns_rewrite_the_table() -> None:
    for definition in ("id BIGSERIAL", "n smallserial NOT NULL", "id int GENERATED ALWAYS AS IDENTITY",
                       "id int GENERATED BY DEFAULT AS IDENTITY (START WITH 10)",
                       "total numeric GENERATED ALWAYS AS (price * 2) STORED"):
        e = one(f"ALTER TABLE big ADD {definition}")
        assert (e.lock, e.duration, e.blocking) == (ACCESS_EXCLUSIVE, REWRITE, True), definition


def test_a_new_column_with_an_inline_constraint_checks_or_indexes_every_row() -> None:
    assert one("ALTER TABLE big ADD COLUMN c int UNIQUE").duration == BUILD
    assert one("ALTER TABLE big ADD COLUMN c int CHECK (c > 0)").duration == SCAN
    fk = one('ALTER TABLE big ADD COLUMN t text REFERENCES "Tenant"(id)')
    assert fk.duration == SCAN and '"Tenant"' in fk.reason


def test_add_column_if_not_exists_of_an_existing_column_does_nothing() -> None:
    text = "ALTER TABLE big ADD COLUMN IF NOT EXISTS n bigserial"
    assert weigh(text, catalog=live(table("big", ("n", "bigint"))))[0].table is None
    assert one(text).duration == REWRITE


def test_set_not_null_scans_unless_a_validated_check_proves_it() -> None:
    text = 'ALTER TABLE big ALTER COLUMN "emailLower" SET NOT NULL;'
    plain = one(text)
    assert (plain.lock, plain.blocks, plain.duration) == (ACCESS_EXCLUSIVE, READS_AND_WRITES, SCAN)
    assert "NOT VALID" in plain.advice
    proven = live(table("big", ("emailLower", "text"),
                        checks=(Check("big_email_nn", 'CHECK ((("emailLower" IS NOT NULL) AND (id > 0)))'),)))
    assert one(text, catalog=proven).duration == BRIEF
    # Not validated yet: still a scan
    assert one(text, catalog=proven, unvalidated=frozenset({"big_email_nn"})).duration == SCAN
    # A check on another column, or one that does not prove it, does not count
    other = live(table("big", checks=(Check("c", "CHECK ((x IS NOT NULL))"),
                                      Check("d", "CHECK ((\"emailLower\" <> ''::text))"))))
    assert one(text, catalog=other).duration == SCAN


def test_a_not_null_check_added_then_validated_by_earlier_pending_files_spares_the_scan() -> None:
    files = [("1_check", 'ALTER TABLE big ADD CONSTRAINT big_c_nn CHECK ("c" IS NOT NULL) NOT VALID;'),
             ("2_validate", "ALTER TABLE big VALIDATE CONSTRAINT big_c_nn;"),
             ("3_not_null", 'ALTER TABLE big ALTER COLUMN "c" SET NOT NULL;')]
    found = estimate(parse(files), Facts(rows={"big": BIG}))
    assert [(e.lock, e.duration, e.blocking) for e in found] == [(ACCESS_EXCLUSIVE, BRIEF, False),
                                                                 (SHARE_UPDATE_EXCLUSIVE, SCAN, False),
                                                                 (ACCESS_EXCLUSIVE, BRIEF, False)]
    # Without the validation in between, SET NOT NULL still scans
    assert estimate(parse([files[0], files[2]]), Facts(rows={"big": BIG}))[1].duration == SCAN


def test_a_type_change_rewrites_unless_binary_coercible() -> None:
    prisma = one('ALTER TABLE "big" ALTER COLUMN "price" SET DATA TYPE DECIMAL(12,2);')
    assert (prisma.lock, prisma.duration, prisma.blocking) == (ACCESS_EXCLUSIVE, REWRITE, True)
    catalog = live(table("big", ("name", "character varying(10)"), ("price", "numeric(10,2)")))
    assert one('ALTER TABLE big ALTER COLUMN name TYPE text', catalog=catalog).duration == BRIEF
    assert one('ALTER TABLE big ALTER name TYPE VARCHAR(20)', catalog=catalog).duration == BRIEF
    assert one('ALTER TABLE big ALTER name TYPE VARCHAR(5)', catalog=catalog).duration == REWRITE
    assert one('ALTER TABLE big ALTER price SET DATA TYPE DECIMAL(12,2)', catalog=catalog).duration == BRIEF
    assert one('ALTER TABLE big ALTER name TYPE text USING name::text', catalog=catalog).duration == REWRITE
    assert one('ALTER TABLE big ALTER price TYPE bigint', catalog=catalog).duration == REWRITE


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("text", "text", True), ("character varying(10)", "text", True), ("text", "varchar", True),
    ("text", "varchar(10)", False), ("character varying(10)", "varchar(10)", True),
    ("numeric(10,2)", "numeric", True), ("numeric(10,2)", "decimal(9,2)", False),
    ("numeric(10,2)", "numeric(12,3)", False), ("integer", "bigint", False),
    ("timestamp(3) without time zone", "timestamp(3)", False), ('"Status"', '"Status"', True)])
def test_coercible_type_changes(old: str, new: str, expected: bool) -> None:
    assert coercible(old, new) is expected


def test_a_foreign_key_without_not_valid_blocks_writes_on_both_tables_while_it_checks_every_row() -> None:
    text = ('ALTER TABLE "big" ADD CONSTRAINT "big_tenant_fkey" FOREIGN KEY ("tenantId") REFERENCES'
            ' "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;')
    e = one(text)
    assert (e.lock, e.blocks, e.duration, e.blocking) == (SHARE_ROW_EXCLUSIVE, WRITES, SCAN, True)
    assert '"Tenant" locked in the same mode' in e.reason and "NOT VALID" in e.advice
    later = one(text.replace(";", " NOT VALID;"))
    assert (later.lock, later.duration, later.blocking) == (SHARE_ROW_EXCLUSIVE, BRIEF, False)


def test_a_check_without_not_valid_scans_under_access_exclusive() -> None:
    e = one('ALTER TABLE "big" ADD CONSTRAINT "w" CHECK ("weight" >= 0 AND "weight" <= 100);')
    assert (e.lock, e.blocks, e.duration) == (ACCESS_EXCLUSIVE, READS_AND_WRITES, SCAN)
    assert one('ALTER TABLE big ADD CHECK (w > 0) NOT VALID').duration == BRIEF


def test_unique_and_primary_keys_build_an_index_unless_using_one() -> None:
    for text in ("ALTER TABLE big ADD CONSTRAINT big_x_key UNIQUE (x)",
                 "ALTER TABLE big ADD PRIMARY KEY (id)"):
        e = one(text)
        assert (e.lock, e.duration, e.blocking) == (ACCESS_EXCLUSIVE, BUILD, True)
        assert "USING INDEX" in e.advice
    assert one("ALTER TABLE big ADD CONSTRAINT k UNIQUE USING INDEX big_x_idx").duration == BRIEF


def test_validate_constraint_scans_without_blocking() -> None:
    e = one("ALTER TABLE big VALIDATE CONSTRAINT big_fkey")
    assert (e.lock, e.blocks, e.duration, e.blocking) == (SHARE_UPDATE_EXCLUSIVE, NOTHING, SCAN, False)


@pytest.mark.parametrize("action", [
    'RENAME COLUMN "a" TO "b"', "DROP COLUMN a", 'ALTER COLUMN "a" SET DEFAULT 3',
    "ALTER COLUMN a DROP DEFAULT", "ALTER COLUMN a DROP NOT NULL", "DROP CONSTRAINT big_pkey", "OWNER TO app",
    "ENABLE ROW LEVEL SECURITY",
    'ADD COLUMN "wishlistCount" INTEGER NOT NULL DEFAULT 0', "ADD COLUMN c TEXT COLLATE \"C\""])
def test_other_alter_table_forms_are_brief_access_exclusive(action: str) -> None:
    e = one(f"ALTER TABLE IF EXISTS ONLY big {action}")
    assert (e.lock, e.duration, e.blocking) == (ACCESS_EXCLUSIVE, BRIEF, False)


def test_lighter_alter_table_forms_take_lighter_locks() -> None:
    assert one("ALTER TABLE big SET (fillfactor = 70)").lock == SHARE_UPDATE_EXCLUSIVE
    assert one("ALTER TABLE big ALTER COLUMN a SET STATISTICS 500").lock == SHARE_UPDATE_EXCLUSIVE
    assert one("ALTER TABLE big DISABLE TRIGGER ALL").lock == SHARE_ROW_EXCLUSIVE
    assert one("ALTER TABLE big SET TABLESPACE slow").duration == REWRITE


def test_the_actions_of_one_alter_table_combine_into_the_strongest_lock_and_the_longest_work() -> None:
    e = one('ALTER TABLE "big" DROP CONSTRAINT "big_pkey",\nADD COLUMN "id2" TEXT,\n'
            'ALTER COLUMN "name" SET NOT NULL, ADD CONSTRAINT "big_pkey" PRIMARY KEY ("id", "x")')
    assert (e.lock, e.duration) == (ACCESS_EXCLUSIVE, BUILD)
    assert "NOT NULL" in e.reason and "primary key" in e.reason


def test_update_or_delete_without_where_holds_every_row_until_commit() -> None:
    for text in ('UPDATE "big" SET "emailLower" = lower(btrim("email"));', "DELETE FROM ONLY big",
                 "UPDATE big AS b SET x = (SELECT y FROM other WHERE other.id = b.id)"):
        e = one(text)
        assert (e.lock, e.blocks, e.duration, e.blocking) == (ROW_EXCLUSIVE, WRITES, EVERY_ROW, True), text
        assert "batches" in e.advice
    for text in ("UPDATE big SET x = 1 WHERE id < 10", "DELETE FROM big USING t WHERE big.id = t.id"):
        assert not one(text).blocking
    assert one("INSERT INTO big SELECT * FROM other").blocks == NOTHING


def test_vacuum_full_and_cluster_rewrite_plain_vacuum_does_not_block() -> None:
    for text in ("VACUUM FULL big", "VACUUM (FULL, ANALYZE) big (x)", "CLUSTER big USING big_pkey",
                 "CLUSTER VERBOSE big_pkey ON big"):
        e = one(text)
        assert (e.table, e.lock, e.duration, e.blocking) == ("big", ACCESS_EXCLUSIVE, REWRITE, True), text
    for text in ("VACUUM big", "VACUUM (FULL false) big", "ANALYZE big", "VACUUM ANALYZE big"):
        assert not one(text).blocking, text
    every = weigh("VACUUM FULL", rows={"a": 5, "b": 7})
    assert [(e.table, e.rows) for e in every] == [("a", 5), ("b", 7)]


def test_reindex_without_concurrently_blocks_writes() -> None:
    catalog = live(table("big", indexes=(Index("big_x_idx", ("x",), False, False),)))
    for text in ("REINDEX TABLE big", "REINDEX INDEX big_x_idx", "REINDEX (VERBOSE) INDEX public.big_x_idx"):
        e = one(text, catalog=catalog)
        assert (e.table, e.lock, e.blocks, e.duration) == ("big", SHARE, WRITES, BUILD), text
        assert e.blocking
    for text in ("REINDEX TABLE CONCURRENTLY big", "REINDEX (CONCURRENTLY) INDEX big_x_idx"):
        assert not one(text, catalog=catalog).blocking, text
    assert [e.table for e in weigh("REINDEX SCHEMA public", rows={"a": 1, "b": 2})] == ["a", "b"]


def test_tables_created_by_the_pending_files_are_new_and_never_warned() -> None:
    files = [("1", 'CREATE TABLE "gift" (id SERIAL NOT NULL);\nCREATE INDEX "gift_idx" ON "gift"(id);'),
             ("2", 'UPDATE "gift" SET id = 1;\nALTER TABLE "gift" ALTER COLUMN id SET NOT NULL;')]
    found = [e for e in estimate(parse(files), Facts(rows={"big": BIG})) if e.table]
    assert [(e.table, e.new, e.rows, e.blocking) for e in found] == [("gift", True, 0, False)] * 3
    # CREATE TABLE IF NOT EXISTS of a table that exists creates nothing: that table keeps its rows
    assert one('CREATE TABLE IF NOT EXISTS big (id int);\nCREATE INDEX ON big (id);').at_least(BIG)
    # A table dropped and created again is new
    dropped = weigh("DROP TABLE big; CREATE TABLE big (id int); CREATE INDEX ON big (id)")
    assert [(e.table, e.new, e.blocking) for e in dropped if e.table] == [("big", False, False),
                                                                         ("big", True, False)]


def test_locks_taken_earlier_in_the_file_are_held_while_later_statements_work() -> None:
    """One file, one transaction: the lock of a brief ALTER is held through the long UPDATE after it."""
    found = weigh('ALTER TABLE big ADD COLUMN c TEXT;\nUPDATE big SET c = lower(b);\nALTER TABLE small ADD d'
                  " int;\nCREATE INDEX ON big (c);", rows={"big": BIG, "small": 5})
    update, index = found[1], found[3]
    assert (update.lock, update.blocks, update.duration) == (ACCESS_EXCLUSIVE, READS_AND_WRITES, EVERY_ROW)
    assert "holds ACCESS EXCLUSIVE on it since line 1: reads and writes wait as long" in update.reason
    assert (index.lock, index.blocks) == (ACCESS_EXCLUSIVE, READS_AND_WRITES)
    assert 'holds ACCESS EXCLUSIVE on "small" since line 3' in index.reason
    # A new file (or the file's own COMMIT) is a new transaction
    files = [("1", "ALTER TABLE big ADD c TEXT;"), ("2", "UPDATE big SET c = 'x';")]
    assert estimate(parse(files), Facts(rows={"big": BIG}))[1].lock == ROW_EXCLUSIVE
    assert weigh("ALTER TABLE big ADD c TEXT; COMMIT; UPDATE big SET c = 'x'")[2].lock == ROW_EXCLUSIVE


def test_renamed_and_truncated_tables_are_followed() -> None:
    renamed = weigh('ALTER TABLE big RENAME TO "Huge";\nCREATE INDEX ON "Huge" (x);')
    assert (renamed[1].table, renamed[1].rows, renamed[1].line) == ("Huge", BIG, 2)
    assert weigh("TRUNCATE big; CREATE INDEX ON big (x);")[1].rows == 0


def test_statements_it_does_not_know_are_unknown_never_warned() -> None:
    for text in ("DO $$ BEGIN UPDATE big SET x = 1; END $$;", "CALL backfill()", "WITH x AS (SELECT 1) "
                 "UPDATE big SET y = 1", "MERGE INTO big USING t ON true WHEN MATCHED THEN DELETE"):
        [e] = weigh(text)
        assert (e.lock, e.blocks, e.duration, e.table, e.blocking) == (UNKNOWN, UNKNOWN, UNKNOWN, None, False)
        assert "not estimated" in e.describe()


def test_statements_inside_a_function_body_are_not_classified() -> None:
    text = ("CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $fn$\nBEGIN\n  UPDATE big SET x = 1;\n"
            "  CREATE INDEX ON big (x);\n  RETURN NEW;\nEND;\n$fn$ LANGUAGE plpgsql;\n"
            "CREATE TRIGGER t BEFORE UPDATE OF x ON big FOR EACH ROW EXECUTE FUNCTION touch();")
    found = weigh(text)
    assert [(e.line, e.table, e.lock) for e in found] == [(1, None, ""), (8, "big", SHARE_ROW_EXCLUSIVE)]


KEYWORDS = ("ALTER", "TABLE", "ADD", "COLUMN", "DEFAULT", "CREATE", "INDEX", "ON", "CHECK", "NOT", "NULL",
            "VALID", "UPDATE", "SET", "WHERE", "VACUUM", "FULL", "REINDEX", "TYPE", "USING", "CONSTRAINT")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab ;'\"$()-/*\nEe,.:", *(f"{w} " for w in KEYWORDS)])))
def test_any_text_is_estimated_without_an_error(pieces: list[str]) -> None:
    for e in weigh("".join(pieces), rows={"a": 1, "b": None}):
        assert e.describe()


def test_rows_come_from_reltuples_or_for_a_table_never_analyzed_from_the_live_count() -> None:
    assert TableSize("t", 1234.0, 10, 99, False).rows == 1234
    assert TableSize("t", 0.0, 3, 99, False).rows == 0  # analyzed and empty
    assert TableSize("t", -1.0, 0, 700, False).rows == 700  # never analyzed, PostgreSQL 14+
    assert TableSize("t", 0.0, 0, 700, False).rows == 700  # never analyzed, before 14
    assert TableSize("t", -1.0, 0, 0, True).rows is None  # partitioned: not summed


def test_describe_says_lock_table_rows_and_how_long() -> None:
    assert one("CREATE INDEX i ON big (x)").describe() == (
        'line 1: CREATE INDEX i ON big (x): SHARE on "big" (~1,000,000 rows): blocks writes while it'
        " builds an index")
    assert one("ALTER TABLE big ALTER a SET DEFAULT 1", rows={"big": None}).describe().endswith(
        'ACCESS EXCLUSIVE on "big" (rows unknown): blocks reads and writes for a moment')


# --- the app's own files and Prisma's ---------------------------------------------------------------------

def folder(path: Path) -> list[tuple[str, str]]:
    return [(d.name, (d / "migration.sql").read_text()) for d in sorted(path.iterdir()) if d.is_dir()]


def test_the_shipped_folder_on_an_empty_database_warns_of_nothing() -> None:
    found = estimate(parse(folder(ROOT / "prisma" / "migrations")), Facts(rows={}))
    assert not any(e.blocking for e in found)
    unknown = {e.reason for e in found if e.lock == UNKNOWN}
    assert unknown == {"a DO block: what its code does is not estimated"}


def test_the_baseline_over_existing_tables_and_indexes_warns_of_nothing() -> None:
    """The app's history: tables and indexes there, the ledger without the baseline (IF NOT EXISTS)."""
    scripts = folder(ROOT / "prisma" / "migrations")
    names = {t.name or "" for p in parse(scripts) for t in p.statement.tokens if t.kind == IDENT}
    found = estimate(parse(scripts), Facts(rows=dict.fromkeys(names, BIG), relations=frozenset(names)))
    assert not any(e.blocking for e in found)
    assert not any(e.new for e in found)


def test_the_evolution_releases_are_weighed_as_their_sql_says() -> None:
    scripts = folder(ROOT / "tests" / "evolution" / "migrations")[2:]
    tables = ("Tenant", "ProductProfile", "Event", "Lead", "PromptVersion", "Variant", "AlertSettings")
    found = [e for e in estimate(parse(scripts), Facts(rows=dict.fromkeys(tables, BIG))) if e.table]
    risky = [(e.migration[:14], e.line, e.table, e.lock, e.duration) for e in found if e.at_least(BIG)]
    assert risky == [
        ("20260209000000", 4, "PromptVersion", SHARE, BUILD),
        ("20260209000000", 7, "Variant", ACCESS_EXCLUSIVE, SCAN),
        ("20260216000000", 8, "Lead", ACCESS_EXCLUSIVE, EVERY_ROW),  # ADD COLUMN's lock, held
        ("20260216000000", 11, "Lead", ACCESS_EXCLUSIVE, SCAN)]
    concurrent = next(e for e in found if e.migration.startswith("20260202000000"))
    assert (concurrent.table, concurrent.lock) == ("Event", SHARE_UPDATE_EXCLUSIVE)
    assert not concurrent.blocking
    assert all(e.new for e in found if e.table == "gift_registry" and e.migration.startswith("20260112"))


def test_a_file_with_its_own_transaction_is_weighed_statement_by_statement() -> None:
    scripts = folder(ROOT / "tests" / "evolution" / "with_own_transaction" / "migrations")[2:]
    found = estimate(parse(scripts), Facts(rows={}))
    assert [(e.line, e.lock, e.table, e.new) for e in found][:3] == [
        (2, "", None, False), (5, "", None, False), (14, "", None, False)]
    assert not any(e.blocking for e in found)


PRISMA_SAMPLES = {
    # What `prisma migrate diff` writes for common schema changes (Prisma 6): comments, quoted names,
    # several actions in one ALTER TABLE, SET DATA TYPE, enum changes in their own BEGIN/COMMIT.
    "alter": ("""-- AlterTable
ALTER TABLE "Tenant" DROP COLUMN "chargeId",
ADD COLUMN     "plan" TEXT NOT NULL DEFAULT 'free',
ALTER COLUMN "shop" SET DATA TYPE VARCHAR(255);
""", [("Tenant", ACCESS_EXCLUSIVE, REWRITE)]),
    "enum": ("""-- AlterEnum
BEGIN;
CREATE TYPE "Status_new" AS ENUM ('A', 'B');
ALTER TABLE "Tenant" ALTER COLUMN "status" TYPE "Status_new" USING ("status"::text::"Status_new");
ALTER TYPE "Status" RENAME TO "Status_old";
ALTER TYPE "Status_new" RENAME TO "Status";
DROP TYPE "Status_old";
COMMIT;
""", [("Tenant", ACCESS_EXCLUSIVE, REWRITE)]),
    "index": ("""-- DropIndex
DROP INDEX "Tenant_planId_idx";

-- CreateIndex
CREATE INDEX "Tenant_plan_idx" ON "Tenant"("plan");

-- RenameIndex
ALTER INDEX "Tenant_shop_key" RENAME TO "Tenant_shop_uq";
""", [("Tenant", ACCESS_EXCLUSIVE, BRIEF), ("Tenant", ACCESS_EXCLUSIVE, BUILD),  # DROP INDEX's lock, held
      ("Tenant", SHARE_UPDATE_EXCLUSIVE, BRIEF)]),
    "fk": ("""-- DropForeignKey
ALTER TABLE "Lead" DROP CONSTRAINT "Lead_tenantId_fkey";

-- AddForeignKey
ALTER TABLE "Lead" ADD CONSTRAINT "Lead_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id")\
 ON DELETE RESTRICT ON UPDATE CASCADE;
""", [("Lead", ACCESS_EXCLUSIVE, BRIEF), ("Lead", ACCESS_EXCLUSIVE, SCAN)]),  # DROP CONSTRAINT's, held
}


@pytest.mark.parametrize("sample", PRISMA_SAMPLES)
def test_prisma_generated_sql(sample: str) -> None:
    text, expected = PRISMA_SAMPLES[sample]
    catalog = live(table("Tenant", indexes=(Index("Tenant_planId_idx", ("planId",), False, False),
                                            Index("Tenant_shop_key", ("shop",), True, False))))
    found = [e for e in weigh(text, rows={"Tenant": BIG, "Lead": BIG}, catalog=catalog) if e.table]
    assert [(e.table, e.lock, e.duration) for e in found] == expected
    assert not any(e.lock == UNKNOWN for e in weigh(text))
