"""Every SQL statement the job sends, built with psycopg.sql.

Names are always ``sql.Identifier`` and values ``sql.Literal`` (or bound
parameters), never string formatting.  Nothing here executes anything.

None of the job's own statements runs a function or operator that a role with CREATE on `public` (or on
the target schema) could make: every function is called as ``pg_catalog.f`` with arguments of the exact
types it takes (an unqualified call goes to whatever overload matches best, and an exact match in
`public` beats pg_catalog's through an implicit cast), every catalog relation is named ``pg_catalog.x``
(a temporary table could shadow it), and an operator whose operands have no exact match in pg_catalog is
written ``OPERATOR(pg_catalog.op)``.  The other operators, on catalog types with an exact match there,
resolve to pg_catalog's because the job never lets a schema precede it on the search_path (PostgreSQL
searches pg_catalog first when the path does not name it; the job's reads name it first explicitly).
What the app's migration files run is theirs, as Prisma runs it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from psycopg import sql

from job.schemamodel import Column, ForeignKey, Index, Table

# What the driver executes: a composed statement, or a migration file as it is.
Statement = sql.SQL | sql.Composed

# Prisma Migrate's advisory lock key (schema-engine, flavour/postgres.rs): sharing it
# is what keeps this job and `prisma migrate deploy` from ever running at once.
PRISMA_LOCK_KEY = 72707369
LEDGER = "_prisma_migrations"

# The comment of a row of pg_constraint k or pg_namespace n.  Not obj_description(): on PostgreSQL 12 and
# 13 it is a SQL function whose body (`relnamespace = 11`, oid = integer) is planned with the caller's
# search_path, where an operator =(oid, integer) in `public` is a better match than pg_catalog's.
_CONSTRAINT_COMMENT = ("(SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = k.oid"
                       " AND d.classoid = 'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid"
                       " AND d.objsubid = 0)")
_NAMESPACE_COMMENT = ("(SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = n.oid"
                      " AND d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass::pg_catalog.oid"
                      " AND d.objsubid = 0)")

# The server and the target schema's tables: the start of both inspections below.
_SERVER_AND_TABLES = """
SELECT pg_catalog.current_setting('server_version_num')::int,
       pg_catalog.pg_is_in_recovery(),
       pg_catalog.current_setting('transaction_read_only') = 'on',
       EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
       coalesce(ARRAY(SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
                      ORDER BY 1), '{}'),"""

# One round trip: server facts, the schema's tables and every relation name.
INSPECT = sql.SQL(_SERVER_AND_TABLES + """
       coalesce(ARRAY(SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s ORDER BY 1), '{}')
""")

# The no-op question in one statement: the same, plus the marks that make an up-to-date ledger worth
# a closer look: an INVALID index, a constraint left NOT VALID that no run has tried to validate (those
# a run tried and rows refused carry the job's comment, MARK).
GLANCE = sql.SQL(_SERVER_AND_TABLES + """
       coalesce(ARRAY(SELECT i.relname::pg_catalog.text FROM pg_catalog.pg_index x
                      JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                      JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
                      WHERE n.nspname = %(schema)s AND NOT x.indisvalid ORDER BY 1), '{}'),
       coalesce(ARRAY(SELECT k.conname::pg_catalog.text FROM pg_catalog.pg_constraint k
                      JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace
                      WHERE n.nspname = %(schema)s AND NOT k.convalidated ORDER BY 1), '{}'),
       coalesce(ARRAY(SELECT k.conname::pg_catalog.text FROM pg_catalog.pg_constraint k
                      JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace
                      WHERE n.nspname = %(schema)s AND NOT k.convalidated
                        AND """ + _CONSTRAINT_COMMENT + """ LIKE 'db-init: %%' ORDER BY 1), '{}')
""")


def ledger_rows(schema: str) -> sql.Composed:
    return sql.SQL(
        "SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at,"
        " applied_steps_count, logs FROM {} ORDER BY started_at, migration_name"
    ).format(sql.Identifier(schema, LEDGER))


def count_rows(schema: str, table: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.count(*) FROM {}").format(sql.Identifier(schema, table))


# Session settings that let the server notice a dead job in seconds, not hours,
# and drop its lock: TCP keepalives/user timeout (ignored on Unix sockets) and a
# cap on idling inside a transaction.  Names are fixed here, values are literals.
def session_settings(version: int) -> sql.Composed:
    settings = [
        ("tcp_keepalives_idle", "10"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
        ("idle_in_transaction_session_timeout", "60000"),
    ]
    if version >= 140000:
        settings.append(("client_connection_check_interval", "2000"))
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config({}, {}, false)").format(
            sql.Literal(k), sql.Literal(v))
        for k, v in settings))


TRY_LOCK = sql.SQL("SELECT pg_catalog.pg_try_advisory_lock({}::bigint)").format(sql.Literal(PRISMA_LOCK_KEY))
TRY_XACT_LOCK = sql.SQL("SELECT pg_catalog.pg_try_advisory_xact_lock({}::bigint)").format(
    sql.Literal(PRISMA_LOCK_KEY))
BACKEND_PID = sql.SQL("SELECT pg_catalog.pg_backend_pid()")
UNLOCK = sql.SQL("SELECT pg_catalog.pg_advisory_unlock({}::bigint)").format(sql.Literal(PRISMA_LOCK_KEY))

# Who holds the lock: advisory locks on a bigint key show as classid 0 / objid key / objsubid 1.
LOCK_HOLDERS = sql.SQL("""
SELECT a.pid, coalesce(a.application_name, ''), coalesce(pg_catalog.host(a.client_addr), 'local'),
       a.backend_start, a.state
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0::pg_catalog.oid
  AND l.objid = {}::pg_catalog.oid AND l.objsubid = 1::smallint
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
""").format(sql.Literal(PRISMA_LOCK_KEY))


def transaction_settings(schema: str, lock_timeout_ms: int, statement_timeout_ms: int) -> sql.Composed:
    """SET LOCAL for one DDL transaction: bounded waits, and the target schema first."""
    return sql.SQL(
        "SELECT pg_catalog.set_config('lock_timeout', {}, true),"
        " pg_catalog.set_config('statement_timeout', {}, true),"
        " pg_catalog.set_config('search_path', {}, true)"
    ).format(sql.Literal(f"{lock_timeout_ms}ms"), sql.Literal(f"{statement_timeout_ms}ms"),
             sql.Literal(sql.Identifier(schema).as_string()))


# Explicitly READ COMMITTED, whatever default_transaction_isolation says (Database.open).
BEGIN = sql.SQL("BEGIN ISOLATION LEVEL READ COMMITTED")
ROLLBACK = sql.SQL("ROLLBACK")
COMMIT = sql.SQL("COMMIT")
DISCARD_TEMP = sql.SQL("DISCARD TEMP")
SAVEPOINT = sql.SQL("SAVEPOINT db_init_replay")
SAVEPOINT_OUTER = sql.SQL("SAVEPOINT db_init_replay_all")
ROLLBACK_TO_SAVEPOINT_OUTER = sql.SQL("ROLLBACK TO SAVEPOINT db_init_replay_all")
RELEASE_SAVEPOINT_OUTER = sql.SQL("RELEASE SAVEPOINT db_init_replay_all")
# Schemas a migration could reach by name (the system's own are not a migration's to change).
REAL_SCHEMAS = sql.SQL("SELECT nspname FROM pg_catalog.pg_namespace"
                       " WHERE nspname::pg_catalog.text !~ '^pg_' AND nspname <> 'information_schema'")
SAVEPOINT_UNIT = sql.SQL("SAVEPOINT db_init_replay_unit")
ROLLBACK_TO_SAVEPOINT_UNIT = sql.SQL("ROLLBACK TO SAVEPOINT db_init_replay_unit")
RELEASE_SAVEPOINT_UNIT = sql.SQL("RELEASE SAVEPOINT db_init_replay_unit")
ROLLBACK_TO_SAVEPOINT = sql.SQL("ROLLBACK TO SAVEPOINT db_init_replay")
RELEASE_SAVEPOINT = sql.SQL("RELEASE SAVEPOINT db_init_replay")
TEMP_NAMESPACE = sql.SQL("SELECT nspname FROM pg_catalog.pg_namespace"
                         " WHERE oid = pg_catalog.pg_my_temp_schema()")
# The replay's scratch schemas: those of the job's own role carrying the prefix, with their comment (the
# backend that made them, SCRATCH_COMMENT); and every backend's pid and start, to tell which are gone.
# Nothing here casts a schema's name: anyone may name a schema like ours.
SCRATCH_SCHEMAS = sql.SQL("""
SELECT n.nspname::pg_catalog.text, """ + _NAMESPACE_COMMENT + """
FROM pg_catalog.pg_namespace n
WHERE pg_catalog.starts_with(n.nspname::pg_catalog.text, %(prefix)s::pg_catalog.text)
  AND n.nspowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                         WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
""")
_BACKEND_START = ("pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
BACKENDS = sql.SQL("SELECT a.pid, " + _BACKEND_START + " FROM pg_catalog.pg_stat_activity a"
                   " WHERE a.pid IS NOT NULL")
MY_BACKEND = sql.SQL("SELECT a.pid, " + _BACKEND_START + " FROM pg_catalog.pg_stat_activity a"
                     " WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()")
SCRATCH_COMMENT = "db-init replay scratch: backend {pid} started {started}"


def create_scratch_schema(schema: str) -> sql.Composed:
    """Plainly: a schema of that name made by anyone else is an error, never ours to use."""
    return sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema))


def comment_on_schema(schema: str, text: str) -> sql.Composed:
    return sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema), sql.Literal(text))


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


TYPE_EXISTS = sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typname = %(name)s"
                      " AND typnamespace = ANY(pg_catalog.current_schemas(true)::pg_catalog.regnamespace[]"
                      "::pg_catalog.oid[]))")


def replay_settings(lock_timeout_ms: int, statement_timeout_ms: int) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.set_config('lock_timeout', {}, true),"
                   " pg_catalog.set_config('statement_timeout', {}, true)"
                   ).format(sql.Literal(f"{lock_timeout_ms}ms"), sql.Literal(f"{statement_timeout_ms}ms"))


def without_concurrently(text: str) -> str:
    """For the replay only, on empty scratch tables: the same index, built inside the transaction."""
    return _CONCURRENTLY.sub("", text)


def drop_schema(schema: str) -> sql.Composed:
    return sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


# What CREATE DATABASE asks of the role: superuser or CREATEDB (plan asks it instead of creating).
MAY_CREATE_DATABASE = sql.SQL(
    "SELECT r.rolsuper OR r.rolcreatedb FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER")


def create_database(name: str) -> sql.Composed:
    """A missing database as `prisma migrate deploy` creates it: its name and nothing else (owner,
    template, encoding and locale are the server's defaults). Sent from a maintenance database, in
    autocommit."""
    return sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))


def create_ledger(schema: str) -> sql.Composed:
    # Prisma's own DDL, column for column, so its engine reads the table as its own.
    return sql.SQL("""CREATE TABLE {} (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)""").format(sql.Identifier(schema, LEDGER))


def close_failed_row(schema: str, row_id: str) -> sql.Composed:
    # What `prisma migrate resolve --rolled-back` writes.
    return sql.SQL("UPDATE {} SET rolled_back_at = pg_catalog.now() WHERE id = {} AND finished_at IS NULL"
                   " AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, LEDGER), sql.Literal(row_id))


def record_started(schema: str, row_id: str, name: str, checksum: str) -> sql.Composed:
    # What `prisma migrate deploy` writes before it runs a file (record_migration_started).
    return sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, rolled_back_at,"
        " started_at, applied_steps_count)"
        " VALUES ({}, {}, NULL, {}, NULL, NULL, pg_catalog.clock_timestamp(), 0)"
    ).format(sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(checksum),
             sql.Literal(name))


def record_finished(schema: str, row_id: str) -> sql.Composed:
    # And after it ran: one applied step, finished now (record_successful_step + record_finished).
    return sql.SQL("UPDATE {} SET applied_steps_count = 1, finished_at = pg_catalog.clock_timestamp()"
                   " WHERE id = {}").format(sql.Identifier(schema, LEDGER), sql.Literal(row_id))


def record_started_in_units(schema: str, row_id: str, name: str, checksum: str, logs: str) -> sql.Composed:
    # A file run in several units: its row says so in `logs` while it runs (Prisma reads such a row as
    # failed, P3009, and shows the line: no deploy runs the file's first units twice).
    return sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, rolled_back_at,"
        " started_at, applied_steps_count) VALUES ({}, {}, NULL, {}, {}, NULL,"
        " pg_catalog.clock_timestamp(), 0)"
    ).format(sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(checksum),
             sql.Literal(name), sql.Literal(logs))


def record_progress(schema: str, row_id: str, done: int, now_done: int, logs: str) -> sql.Composed:
    """How far the file got, counted in its statements; only from the count this run read (rowcount 1)."""
    return sql.SQL("UPDATE {} SET applied_steps_count = {}, logs = {} WHERE id = {}"
                   " AND applied_steps_count = {} AND finished_at IS NULL AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, LEDGER), sql.Literal(now_done), sql.Literal(logs), sql.Literal(row_id),
        sql.Literal(done))


def record_finished_units(schema: str, row_id: str, done: int) -> sql.Composed:
    """The last unit committed: the row as Prisma leaves a finished one (one step, no logs)."""
    return sql.SQL("UPDATE {} SET applied_steps_count = 1, logs = NULL,"
                   " finished_at = pg_catalog.clock_timestamp() WHERE id = {} AND applied_steps_count = {}"
                   " AND finished_at IS NULL AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(done))


def resolve_applied(schema: str, row_id: str, name: str, checksum: str) -> sql.Composed:
    # What `prisma migrate resolve --applied` writes: a finished row with no step applied.
    return sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, rolled_back_at,"
        " started_at, applied_steps_count) VALUES ({}, {}, pg_catalog.now(), {}, NULL, NULL,"
        " pg_catalog.now(), 0)"
    ).format(sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(checksum), sql.Literal(name))


def set_lock_timeout(ms: int) -> sql.Composed:
    """For one statement of the app's run outside a transaction block (direct connections only)."""
    return sql.SQL("SELECT pg_catalog.set_config('lock_timeout', {}, false)").format(sql.Literal(f"{ms}ms"))


RESET_LOCK_TIMEOUT = sql.SQL("RESET lock_timeout")


def record_failure(schema: str, row_id: str, logs: str) -> sql.Composed:
    # A file that failed outside a transaction: its row stays failed, with the error, as Prisma leaves it.
    return sql.SQL("UPDATE {} SET logs = {} WHERE id = {}").format(
        sql.Identifier(schema, LEDGER), sql.Literal(logs), sql.Literal(row_id))


def row_exists(schema: str, row_id: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.count(*) FROM {} WHERE id = {}").format(
        sql.Identifier(schema, LEDGER), sql.Literal(row_id))


def applied_rows(schema: str, name: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.count(*) FROM {} WHERE migration_name = {} AND finished_at IS NOT NULL"
                   " AND rolled_back_at IS NULL").format(sql.Identifier(schema, LEDGER), sql.Literal(name))


def rename_table(schema: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def rename_index(schema: str, old: str, new: str) -> sql.Composed:
    # A primary key's index carries the constraint's name: renaming it renames both.
    return sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def script(text: str) -> sql.SQL:
    """A migration file, sent as it is (no parameters, so no placeholder parsing)."""
    return sql.SQL(text)


# --- the catalog of one schema ----------------------------------------------------------------
# Read with search_path set to that schema (Database.describe), so names and expressions that
# PostgreSQL renders read the same for the live schema and for the contract's scratch schema.
DESCRIBE_COLUMNS = sql.SQL("""
SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
       CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' ELSE '' END,
       CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
""")

DESCRIBE_INDEXES = sql.SQL("""
SELECT t.relname, i.relname, x.indisunique, x.indisprimary,
       ARRAY(SELECT coalesce(a.attname::pg_catalog.text, '')
             FROM pg_catalog.unnest(x.indkey::smallint[]) WITH ORDINALITY k(attnum, ord)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE k.ord <= x.indnkeyatts ORDER BY k.ord),
       pg_catalog.pg_get_indexdef(x.indexrelid), pg_catalog.quote_ident(t.relname::pg_catalog.text),
       coalesce((SELECT k.contype::pg_catalog.text FROM pg_catalog.pg_constraint k
                 WHERE k.conindid = x.indexrelid AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x')
                 LIMIT 1), ''),
       x.indisvalid
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relkind IN ('r', 'p')
ORDER BY t.relname, i.relname
""")

DESCRIBE_CONSTRAINTS = sql.SQL("""
SELECT t.relname, k.conname, k.contype::pg_catalog.text, pg_catalog.pg_get_constraintdef(k.oid),
       k.convalidated, r.relname,
       ARRAY(SELECT a.attname::pg_catalog.text
             FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
             ORDER BY u.ord),
       ARRAY(SELECT a.attname::pg_catalog.text
             FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
             ORDER BY u.ord),
       k.confdeltype::pg_catalog.text, k.confupdtype::pg_catalog.text,
       coalesce(""" + _CONSTRAINT_COMMENT + """, '') LIKE 'db-init: %%'
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
LEFT JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND k.contype IN ('f', 'c') AND t.relkind IN ('r', 'p')
ORDER BY t.relname, k.conname
""")

DESCRIBE_ENUMS = sql.SQL("""
SELECT t.typname, ARRAY(SELECT e.enumlabel::pg_catalog.text FROM pg_catalog.pg_enum e
                        WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s AND t.typtype = 'e'
ORDER BY t.typname
""")

DESCRIBE_VIEWS = sql.SQL("""
SELECT c.relname, CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END || ': '
       || pg_catalog.pg_get_viewdef(c.oid, true)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')
ORDER BY c.relname
""")

DESCRIBE_SEQUENCES = sql.SQL("""
SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'S' ORDER BY c.relname
""")

DESCRIBE = (DESCRIBE_COLUMNS, DESCRIBE_INDEXES, DESCRIBE_CONSTRAINTS, DESCRIBE_ENUMS, DESCRIBE_VIEWS,
            DESCRIBE_SEQUENCES)


def session_search_path(schema: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.set_config('search_path', {}, false)").format(
        sql.Literal(sql.Identifier(schema).as_string()))


# A statement that begins or ends a transaction, at the start of a line (not plpgsql's BEGIN ... END).
_TRANSACTION_CONTROL = re.compile(
    r"^\s*((COMMIT|ROLLBACK)\b|START\s+TRANSACTION\b|BEGIN\s*(TRANSACTION|WORK)?\s*;)",
    re.IGNORECASE | re.MULTILINE)
_SEARCH_PATH = re.compile(r"\bSET\s+(LOCAL\s+|SESSION\s+)?search_path\b|set_config\s*\(\s*'search_path'"
                          r"|\bWITH\s+SCHEMA\b", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def names_a_real_schema(text: str, schemas: Sequence[str]) -> str | None:
    """Why a file may reach objects outside the scratch schema of a replay, if it may (a guard
    that errs towards "may": the replay is then skipped, never the migration)."""
    text = _COMMENTS.sub(" ", text)
    if _SEARCH_PATH.search(text):
        return "it sets its own search_path or schema, which a replay cannot redirect"
    for schema in schemas:
        quoted = '"' + schema.replace('"', '""') + '"'
        bare = re.escape(schema) if schema == schema.lower() and schema.isidentifier() else None
        pattern = re.escape(quoted) + r"\s*\." + (rf"|(?<![\w$\"]){bare}\s*\.(?=\s*[\w\"])" if bare else "")
        if re.search(pattern, text, re.IGNORECASE if bare else 0):
            return f"it names the schema {schema!r}, which a replay must not touch"
    return None


def has_transaction_control(text: str) -> bool:
    return _TRANSACTION_CONTROL.search(text) is not None


def reading_search_path(schema: str) -> sql.Composed:
    """For the rest of a transaction that only reads the catalog: pg_catalog first, named, then
    ``schema``, relative to which names and types render exactly as with ``schema`` alone (PostgreSQL
    puts an unnamed pg_catalog first too; naming it says so whatever the session's path)."""
    return sql.SQL("SELECT pg_catalog.set_config('search_path', {}, true)").format(
        sql.Literal(sql.SQL("pg_catalog, {}").format(sql.Identifier(schema)).as_string()))


def local_search_path(schema: str) -> sql.Composed:
    """For the rest of the transaction, resolve and render names relative to ``schema``."""
    return sql.SQL("SELECT pg_catalog.set_config('search_path', {}, true)").format(
        sql.Literal(sql.Identifier(schema).as_string()))


# --- healing: DDL from the contract's catalog ------------------------------------------------
# Types, defaults, index and constraint definitions are text that PostgreSQL itself rendered
# when it read the contract's scratch schema (never text a person or a parser wrote), so they
# are composed as SQL fragments; every name is an Identifier.

def _column_definition(column: Column) -> sql.Composed:
    parts: list[sql.Composable] = [sql.Identifier(column.name), sql.SQL(column.type)]
    if column.identity:
        parts.append(sql.SQL(f"GENERATED {'ALWAYS' if column.identity == 'ALWAYS' else 'BY DEFAULT'}"
                             " AS IDENTITY"))
    if column.default is not None:
        parts += [sql.SQL("DEFAULT"), sql.SQL(column.default)]
    if column.generated is not None:
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(sql.SQL(column.generated)))
    if not column.nullable:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def create_table(schema: str, table: Table) -> sql.Composed:
    items = [_column_definition(c) for c in table.columns]
    items += [sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
        sql.Identifier(i.name), sql.SQL(", ").join(map(sql.Identifier, i.columns)))
        for i in table.indexes if i.primary]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        sql.Identifier(schema, table.name), sql.SQL(", ").join(items))


def add_column(schema: str, table: str, column: Column) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}").format(
        sql.Identifier(schema, table), _column_definition(column))


def set_default(schema: str, table: str, column: Column) -> sql.Composed:
    assert column.default is not None
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
        sql.Identifier(schema, table), sql.Identifier(column.name), sql.SQL(column.default))


def add_primary_key(schema: str, table: str, index: Index) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
        sql.Identifier(schema, table), sql.Identifier(index.name),
        sql.SQL(", ").join(map(sql.Identifier, index.columns)))


def add_unique_constraint(schema: str, table: str, index: Index) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
        sql.Identifier(schema, table), sql.Identifier(index.name),
        sql.SQL(", ").join(map(sql.Identifier, index.columns)))


def create_index(schema: str, table: str, index: Index) -> sql.Composed:
    return sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} USING {}").format(
        sql.SQL("UNIQUE " if index.unique else ""), sql.Identifier(index.name),
        sql.Identifier(schema, table), sql.SQL(index.definition))


def drop_index(schema: str, name: str) -> sql.Composed:
    return sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, name))


# --- indexes built beside live traffic ------------------------------------------------------------
# CREATE/DROP INDEX CONCURRENTLY take SHARE UPDATE EXCLUSIVE: app reads and writes go on.  They run
# only outside a transaction block, each on its own (never in a multi-statement string).

def create_index_concurrently(schema: str, table: str, index: Index, *, unique: bool) -> sql.Composed:
    return sql.SQL("CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING {}").format(
        sql.SQL("UNIQUE " if unique else ""), sql.Identifier(index.name),
        sql.Identifier(schema, table), sql.SQL(index.definition))


def drop_index_concurrently(schema: str, name: str) -> sql.Composed:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name))


def attach_index(schema: str, table: str, index: Index) -> sql.Composed:
    """A unique index built beforehand becomes the constraint: a catalog change, no scan."""
    kind = "PRIMARY KEY" if index.primary else "UNIQUE"
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
        sql.Identifier(schema, table), sql.Identifier(index.name), sql.SQL(kind), sql.Identifier(index.name))


def session_timeouts(lock_timeout_ms: int, statement_timeout_ms: int) -> sql.Composed:
    """For statements that run outside a transaction block (direct connections only)."""
    return sql.SQL("SELECT pg_catalog.set_config('lock_timeout', {}, false),"
                   " pg_catalog.set_config('statement_timeout', {}, false)"
                   ).format(sql.Literal(f"{lock_timeout_ms}ms"), sql.Literal(f"{statement_timeout_ms}ms"))


# RESET restores the role's, database's or server's own defaults.
RESET_TIMEOUTS = (sql.SQL("RESET lock_timeout"), sql.SQL("RESET statement_timeout"))

# An index's validity, and whether some session is building it right now (an INVALID index that is
# being built is not a leftover: dropping it would kill the other build).
INDEX_STATE = sql.SQL("""
SELECT x.indisvalid,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid
               AND p.pid <> pg_catalog.pg_backend_pid())
FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = %(schema)s AND i.relname = %(index)s
""")

# How far a long build has come (PostgreSQL 12+).
INDEX_PROGRESS = sql.SQL("""
SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total, lockers_done, lockers_total
FROM pg_catalog.pg_stat_progress_create_index WHERE pid = %(pid)s::integer
""")


def duplicate_keys(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    """Keys held by more than one row (NULLs are distinct, as in a unique index), and those rows."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    not_null = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(n), 0)"
                   " FROM (SELECT pg_catalog.count(*) AS n FROM {} WHERE {}"
                   " GROUP BY {} HAVING pg_catalog.count(*) > 1) d").format(
        sql.Identifier(schema, table), not_null, cols)


def add_constraint(schema: str, table: str, name: str, definition: str) -> sql.Composed:
    """NOT VALID: existing rows are not checked (short lock); VALIDATE follows in its own step."""
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
        sql.Identifier(schema, table), sql.Identifier(name), sql.SQL(definition))


def create_enum(schema: str, name: str, labels: Sequence[str]) -> sql.Composed:
    return sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Literal, labels)))


def add_enum_value(schema: str, name: str, label: str, *, after: str | None, before: str | None
                   ) -> sql.Composed:
    """A missing label, placed where the contract has it (ALTER TYPE ... ADD VALUE: PostgreSQL 12+
    allows it in a transaction; the new value is usable once the transaction commits)."""
    position: sql.Composable = sql.SQL("")
    if after is not None:
        position = sql.SQL(" AFTER {}").format(sql.Literal(after))
    elif before is not None:
        position = sql.SQL(" BEFORE {}").format(sql.Literal(before))
    return sql.SQL("ALTER TYPE {} ADD VALUE IF NOT EXISTS {}{}").format(
        sql.Identifier(schema, name), sql.Literal(label), position)


def create_sequence(schema: str, name: str) -> sql.Composed:
    return sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(sql.Identifier(schema, name))


def create_view(schema: str, name: str, definition: str) -> sql.Composed:
    kind, _, body = definition.partition(": ")
    return sql.SQL("CREATE {} {} AS {}").format(sql.SQL(kind), sql.Identifier(schema, name),
                                                sql.SQL(body.rstrip().rstrip(";")))


def validate_constraint(schema: str, table: str, name: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
        sql.Identifier(schema, table), sql.Identifier(name))


# A constraint whose validation rows refused carries this comment, so the next pod start does not scan
# the table again for nothing (only DB_INIT_HEAL=always runs try again).  Never over a comment of
# someone else's; taken off once the constraint is valid.
MARK = "db-init: "


def mark_not_validated(schema: str, table: str, name: str, reason: str) -> sql.Composed:
    return _comment_if(schema, table, name, sql.Literal(MARK + reason), unmarked_too=True)


def clear_mark(schema: str, table: str, name: str) -> sql.Composed:
    return _comment_if(schema, table, name, sql.SQL("NULL"), unmarked_too=False)


def _comment_if(schema: str, table: str, name: str, text: sql.Composable, *, unmarked_too: bool
                ) -> sql.Composed:
    """COMMENT ON CONSTRAINT, only where its comment is the job's (or, ``unmarked_too``, absent)."""
    current = sql.SQL("(SELECT " + _CONSTRAINT_COMMENT + " FROM pg_catalog.pg_constraint k"
                      " WHERE k.conrelid = {}::pg_catalog.regclass::pg_catalog.oid AND k.conname = {})"
                      ).format(sql.Literal(sql.Identifier(schema, table).as_string()), sql.Literal(name))
    if unmarked_too:
        current = sql.SQL("coalesce({}, {})").format(current, sql.Literal(MARK))
    return sql.SQL(
        "DO " + GUARD_TAG + " BEGIN IF {current} LIKE {like} THEN COMMENT ON CONSTRAINT {c} ON {t} IS {text};"
        " END IF; END " + GUARD_TAG
    ).format(current=current, like=sql.Literal(MARK + "%"), c=sql.Identifier(name),
             t=sql.Identifier(schema, table), text=text)


def rename_constraint(schema: str, table: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
        sql.Identifier(schema, table), sql.Identifier(old), sql.Identifier(new))


def count_orphans(schema: str, table: str, fk: ForeignKey) -> sql.Composed:
    """Rows whose key points nowhere: what keeps a foreign key from validating."""
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    not_null = sql.SQL(" AND ").join(sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(c)) for c, _ in pairs)
    match = sql.SQL(" AND ").join(sql.SQL("r.{} = t.{}").format(sql.Identifier(r), sql.Identifier(c))
                                  for c, r in pairs)
    return sql.SQL("SELECT pg_catalog.count(*) FROM {} t"
                   " WHERE {} AND NOT EXISTS (SELECT 1 FROM {} r WHERE {})").format(
        sql.Identifier(schema, table), not_null, sql.Identifier(schema, fk.ref_table), match)


# --- the two session tables ---------------------------------------------------------------------
# A dollar-quote tag no identifier of ours contains (job.dburl refuses schemas that do).
GUARD_TAG = "$db_init_guard$"


GAINED_ROWS = "55006"  # object_in_use, as drop_if_empty's guard raises it: the runner plans again


def drop_if_empty(schema: str, table: str) -> sql.Composed:
    """Drop a table only if it is still empty when locked: never a row lost to a race."""
    return sql.SQL(
        "DO " + GUARD_TAG + " BEGIN LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE;"
        " IF EXISTS (SELECT 1 FROM {t}) THEN RAISE EXCEPTION 'table % gained rows; not dropped', {n}"
        " USING ERRCODE = '55006'; END IF; DROP TABLE {t}; END " + GUARD_TAG
    ).format(t=sql.Identifier(schema, table), n=sql.Literal(f"{schema}.{table}"))


MERGE_BATCH_ROWS = 5000


def copy_missing_batch(schema: str, source: str, target: str, columns: Sequence[str]) -> sql.Composed:
    """The next batch of source's rows after id %(after)s (NULL: from the start), in id order: those
    whose id target lacks are copied (on the same id, target's row stays).  Returns the batch's last
    id, its rows and how many were copied.  Each batch is a short transaction of its own, and a rerun
    after an interruption copies only what is still missing: never a row twice."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL(
        "WITH batch AS (SELECT {cols} FROM {source}"
        " WHERE %(after)s::pg_catalog.text IS NULL OR {id} > %(after)s"
        " ORDER BY {id} LIMIT {limit}),"
        " copied AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM batch b WHERE NOT EXISTS"
        " (SELECT 1 FROM {target} t WHERE t.{id} = b.{id}) ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT (SELECT {id} FROM batch ORDER BY {id} DESC LIMIT 1),"
        " (SELECT pg_catalog.count(*) FROM batch), (SELECT pg_catalog.count(*) FROM copied)"
    ).format(cols=cols, source=sql.Identifier(schema, source), target=sql.Identifier(schema, target),
             id=sql.Identifier("id"), limit=sql.Literal(MERGE_BATCH_ROWS))


def lock_against_writes(schema: str, table: str) -> sql.Composed:
    """Stops INSERT, UPDATE and DELETE on ``table`` until the transaction ends; reads go on."""
    return sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier(schema, table))


def copy_missing(schema: str, source: str, target: str, columns: Sequence[str]) -> sql.Composed:
    """Every row of source whose id target lacks, copied; returns how many.  The merge's last step,
    under lock_against_writes: the rows written to source since (or behind) the batches."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL(
        "WITH copied AS (INSERT INTO {target} ({cols}) SELECT {cols} FROM {source} s WHERE NOT EXISTS"
        " (SELECT 1 FROM {target} t WHERE t.{id} = s.{id}) ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT pg_catalog.count(*) FROM copied"
    ).format(cols=cols, source=sql.Identifier(schema, source), target=sql.Identifier(schema, target),
             id=sql.Identifier("id"))


def count_shared_ids(schema: str, a: str, b: str) -> sql.Composed:
    return sql.SQL("SELECT pg_catalog.count(*) FROM {} x JOIN {} y ON x.{} = y.{}").format(
        sql.Identifier(schema, a), sql.Identifier(schema, b), sql.Identifier("id"), sql.Identifier("id"))


# --- lock estimates (job.lockrisk): read only when migrations are pending, never on the no-op path ---
# Statistics only: no table is opened or locked (pg_relation_size() would take a lock on each).
TABLE_SIZES = sql.SQL("""
SELECT c.relname::pg_catalog.text, c.reltuples::double precision, c.relpages::bigint,
       pg_catalog.pg_stat_get_live_tuples(c.oid), c.relkind = 'p'
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
""")


# Each named function's volatility, 'i' < 's' < 'v' (also their text order): the most volatile of its
# overloads, in any schema.
FUNCTION_VOLATILITY = sql.SQL("""
SELECT p.proname::pg_catalog.text, pg_catalog.max(p.provolatile::pg_catalog.text COLLATE "C")
FROM pg_catalog.pg_proc p
WHERE p.proname = ANY(%(functions)s::pg_catalog.text[]) GROUP BY p.proname
""")
