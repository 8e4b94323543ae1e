"""Every SQL statement the job sends, built with psycopg.sql.

Names are always ``sql.Identifier`` and values ``sql.Literal`` (or bound
parameters), never string formatting.  Nothing here executes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from job.schemamodel import Column, ForeignKey, Index, Table

# What the driver executes: a composed statement, or a migration file as it is.
Statement = sql.SQL | sql.Composed

# Prisma Migrate's advisory lock key (schema-engine, flavour/postgres.rs): sharing it
# is what keeps this job and `prisma migrate deploy` from ever running at once.
PRISMA_LOCK_KEY = 72707369
LEDGER = "_prisma_migrations"

# One round trip: server facts plus the target schema's tables.
INSPECT = sql.SQL("""
SELECT current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       current_setting('transaction_read_only') = 'on',
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s),
       coalesce(ARRAY(SELECT c.relname::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
                      ORDER BY 1), '{}'),
       coalesce(ARRAY(SELECT c.relname::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = %(schema)s ORDER BY 1), '{}')
""")


def ledger_rows(schema: str) -> sql.Composed:
    return sql.SQL(
        "SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at,"
        " applied_steps_count FROM {} ORDER BY started_at, migration_name"
    ).format(sql.Identifier(schema, LEDGER))


def count_rows(schema: str, table: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))


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
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(k), sql.Literal(v))
        for k, v in settings))


TRY_LOCK = sql.SQL("SELECT pg_try_advisory_lock({})").format(sql.Literal(PRISMA_LOCK_KEY))
TRY_XACT_LOCK = sql.SQL("SELECT pg_try_advisory_xact_lock({})").format(sql.Literal(PRISMA_LOCK_KEY))
BACKEND_PID = sql.SQL("SELECT pg_backend_pid()")
UNLOCK = sql.SQL("SELECT pg_advisory_unlock({})").format(sql.Literal(PRISMA_LOCK_KEY))

# Who holds the lock: advisory locks on a bigint key show as classid 0 / objid key / objsubid 1.
LOCK_HOLDERS = sql.SQL("""
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
       a.backend_start, a.state
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = {}
  AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
""").format(sql.Literal(PRISMA_LOCK_KEY))


def transaction_settings(schema: str, lock_timeout_ms: int, statement_timeout_ms: int) -> sql.Composed:
    """SET LOCAL for one DDL transaction: bounded waits, and the target schema first."""
    return sql.SQL(
        "SELECT set_config('lock_timeout', {}, true), set_config('statement_timeout', {}, true),"
        " set_config('search_path', {}, true)"
    ).format(sql.Literal(f"{lock_timeout_ms}ms"), sql.Literal(f"{statement_timeout_ms}ms"),
             sql.Literal(sql.Identifier(schema).as_string()))


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_ledger(schema: str) -> sql.Composed:
    # Prisma's own DDL, column for column, so its engine reads the table as its own.
    return sql.SQL("""CREATE TABLE {} (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)""").format(sql.Identifier(schema, LEDGER))


def close_failed_row(schema: str, row_id: str) -> sql.Composed:
    # What `prisma migrate resolve --rolled-back` writes.
    return sql.SQL("UPDATE {} SET rolled_back_at = now() WHERE id = {} AND finished_at IS NULL"
                   " AND rolled_back_at IS NULL").format(
        sql.Identifier(schema, LEDGER), sql.Literal(row_id))


def record_migration(schema: str, row_id: str, name: str, checksum: str) -> sql.Composed:
    # What a successful `prisma migrate deploy` leaves: logs NULL, one applied step.
    # started_at is the transaction's start, finished_at the moment of recording.
    return sql.SQL(
        "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, rolled_back_at,"
        " started_at, applied_steps_count) VALUES ({}, {}, clock_timestamp(), {}, NULL, NULL,"
        " now(), 1)"
    ).format(sql.Identifier(schema, LEDGER), sql.Literal(row_id), sql.Literal(checksum),
             sql.Literal(name))


def rename_table(schema: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def rename_index(schema: str, old: str, new: str) -> sql.Composed:
    # A primary key's index carries the constraint's name: renaming it renames both.
    return sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


def script(text: str) -> sql.SQL:
    """A migration file, sent as it is (no parameters, so no placeholder parsing)."""
    return sql.SQL(text)


# The live shape of one schema's tables, for verification (job.catalog turns rows into Tables).
DESCRIBE_COLUMNS = sql.SQL("""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
""")

DESCRIBE_INDEXES = sql.SQL("""
SELECT t.relname, i.relname, x.indisunique, x.indisprimary,
       ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relkind IN ('r', 'p')
ORDER BY t.relname, i.relname
""")

DESCRIBE_FOREIGN_KEYS = sql.SQL("""
SELECT t.relname, k.conname, r.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.ord),
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.ord),
       k.confdeltype::text, k.confupdtype::text, k.convalidated
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND k.contype = 'f'
ORDER BY t.relname, k.conname
""")


# --- healing: DDL from the contract ----------------------------------------------------------
# Types and defaults come from job.contract, which spells them as PostgreSQL renders them;
# only this fixed set of types may be written into DDL.
CONTRACT_TYPES = frozenset({"text", "integer", "bigint", "double precision", "boolean",
                            "timestamp(3) without time zone", "jsonb", "text[]"})


def _column_definition(column: Column) -> sql.Composed:
    if column.type not in CONTRACT_TYPES:
        raise ValueError(f"type {column.type!r} is not one the job writes")
    parts: list[sql.Composable] = [sql.Identifier(column.name), sql.SQL(column.type)]
    if column.default is not None:
        parts += [sql.SQL("DEFAULT"), sql.SQL(column.default)]
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


def create_index(schema: str, table: str, index: Index) -> sql.Composed:
    return sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.SQL("UNIQUE " if index.unique else ""), sql.Identifier(index.name),
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, index.columns)))


_ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"})


def add_foreign_key(schema: str, table: str, fk: ForeignKey) -> sql.Composed:
    """NOT VALID: existing rows are not checked (short lock); VALIDATE follows in its own step."""
    if not {fk.on_delete, fk.on_update} <= _ACTIONS:
        raise ValueError(f"unknown referential action in {fk.name}")
    return sql.SQL(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})"
        " ON DELETE {} ON UPDATE {} NOT VALID").format(
        sql.Identifier(schema, table), sql.Identifier(fk.name),
        sql.SQL(", ").join(map(sql.Identifier, fk.columns)), sql.Identifier(schema, fk.ref_table),
        sql.SQL(", ").join(map(sql.Identifier, fk.ref_columns)), sql.SQL(fk.on_delete),
        sql.SQL(fk.on_update))


def validate_constraint(schema: str, table: str, name: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
        sql.Identifier(schema, table), sql.Identifier(name))


def rename_constraint(schema: str, table: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
        sql.Identifier(schema, table), sql.Identifier(old), sql.Identifier(new))


def count_orphans(schema: str, table: str, fk: ForeignKey) -> sql.Composed:
    """Rows whose key points nowhere: what keeps a foreign key from validating."""
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    not_null = sql.SQL(" AND ").join(sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(c)) for c, _ in pairs)
    match = sql.SQL(" AND ").join(sql.SQL("r.{} = t.{}").format(sql.Identifier(r), sql.Identifier(c))
                                  for c, r in pairs)
    return sql.SQL("SELECT count(*) FROM {} t WHERE {} AND NOT EXISTS (SELECT 1 FROM {} r WHERE {})").format(
        sql.Identifier(schema, table), not_null, sql.Identifier(schema, fk.ref_table), match)


# --- the two session tables ---------------------------------------------------------------------
# A dollar-quote tag no identifier of ours contains (job.dburl refuses schemas that do).
GUARD_TAG = "$db_init_guard$"


def drop_if_empty(schema: str, table: str) -> sql.Composed:
    """Drop a table only if it is still empty when locked: never a row lost to a race."""
    return sql.SQL(
        "DO " + GUARD_TAG + " BEGIN LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE;"
        " IF EXISTS (SELECT 1 FROM {t}) THEN RAISE EXCEPTION 'table % gained rows; not dropped', {n}"
        " USING ERRCODE = 'object_in_use'; END IF; DROP TABLE {t}; END " + GUARD_TAG
    ).format(t=sql.Identifier(schema, table), n=sql.Literal(f"{schema}.{table}"))


def copy_missing_rows(schema: str, source: str, target: str, columns: Sequence[str]) -> sql.Composed:
    """Rows of source whose id target lacks; on the same id, target's row stays."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} s WHERE NOT EXISTS"
                   " (SELECT 1 FROM {} t WHERE t.{} = s.{})").format(
        sql.Identifier(schema, target), cols, cols, sql.Identifier(schema, source),
        sql.Identifier(schema, target), sql.Identifier("id"), sql.Identifier("id"))


def count_shared_ids(schema: str, a: str, b: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {} x JOIN {} y ON x.{} = y.{}").format(
        sql.Identifier(schema, a), sql.Identifier(schema, b), sql.Identifier("id"), sql.Identifier("id"))
